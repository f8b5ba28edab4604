package main

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/coursekb/pipeline/terraform/tfcheck"
)

// schemaFile is the schema file of shared/terraform/README.md. It reuses
// tfcheck's types so that the offline check and the stand-in read the format
// one way; tfcheck.Schema leaves out provider_config, which only the
// stand-in needs.
type schemaFile struct {
	tfcheck.Schema
	ProviderConfig *tfcheck.Block `json:"provider_config"`
}

// loadSchemaFile reads a schema file, gzip-compressed when its name ends in .gz.
func loadSchemaFile(path string) (*schemaFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading provider schema: %w", err)
	}
	defer f.Close()
	var dec *json.Decoder
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		dec = json.NewDecoder(zr)
	} else {
		dec = json.NewDecoder(f)
	}
	var s schemaFile
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.Resource) == 0 || s.ProviderConfig == nil {
		return nil, fmt.Errorf("%s: want resources and a provider_config", path)
	}
	return &s, nil
}

// providerMeta are the provider block's meta-arguments: Terraform takes them
// out of the block before the provider sees it, and the real provider (built
// with the plugin SDK, which forbids these names) does not declare them. The
// schema file lists alias because it was derived from CDK bindings.
var providerMeta = map[string]bool{"alias": true, "version": true}

// convertBlock converts a block of the schema file. top is true for the
// block of a resource, data source or the provider itself.
//
// Nesting follows the real provider, which is built with the plugin SDK v2:
// the SDK has no single nested blocks, only lists (and sets) whose MaxItems
// may be 1, so a block with "list": false is a NestingList with MaxItems 1 and
// is read as build_config[0].x, as with the real provider. The file does not
// tell sets from lists; both are NestingList here, so indexing a block that
// is really a set passes here and fails with the real provider. The one
// exception is a resource's timeouts block, which the SDK declares as
// NestingSingle (timeouts.create).
func convertBlock(b *tfcheck.Block, top bool, omit map[string]bool) (*tfprotov5.SchemaBlock, error) {
	out := &tfprotov5.SchemaBlock{}
	if b == nil {
		return out, nil
	}
	for _, name := range sortedKeys(b.Attributes) {
		if omit[name] {
			continue
		}
		a := b.Attributes[name]
		typ, err := attrType(a.Type)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", name, err)
		}
		sa := &tfprotov5.SchemaAttribute{
			Name:     name,
			Type:     typ,
			Required: a.Required,
			Optional: !a.Required && !a.Computed,
			Computed: a.Computed,
		}
		// The SDK makes every resource's id optional and computed; the file
		// shows it only as optional, as the CDK bindings let one set it.
		if top && name == "id" && !a.Required {
			sa.Optional, sa.Computed = true, true
		}
		out.Attributes = append(out.Attributes, sa)
	}
	for _, name := range sortedKeys(b.Blocks) {
		nb := b.Blocks[name]
		inner, err := convertBlock(nb.Block, false, nil)
		if err != nil {
			return nil, fmt.Errorf("block %s: %w", name, err)
		}
		sb := &tfprotov5.SchemaNestedBlock{TypeName: name, Block: inner, Nesting: tfprotov5.SchemaNestedBlockNestingModeList}
		switch {
		case top && name == "timeouts" && !nb.List:
			sb.Nesting = tfprotov5.SchemaNestedBlockNestingModeSingle
		default:
			if nb.Required {
				sb.MinItems = 1
			}
			if !nb.List {
				sb.MaxItems = 1
			}
		}
		out.BlockTypes = append(out.BlockTypes, sb)
	}
	return out, nil
}

// attrType converts a TYPE of the schema file. The file writes sets as
// lists, so a set attribute is a list here: Terraform converts between the
// two, and only indexing a set (which the real provider refuses) passes.
func attrType(raw json.RawMessage) (tftypes.Type, error) {
	var name string
	if err := json.Unmarshal(raw, &name); err == nil {
		return primitive(name)
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return nil, fmt.Errorf("type %s: want a name or [collection, element]", raw)
	}
	elem, err := primitive(pair[1])
	if err != nil {
		return nil, err
	}
	switch pair[0] {
	case "list":
		return tftypes.List{ElementType: elem}, nil
	case "map":
		return tftypes.Map{ElementType: elem}, nil
	}
	return nil, fmt.Errorf("type %s: unknown collection %q", raw, pair[0])
}

func primitive(name string) (tftypes.Type, error) {
	switch name {
	case "string":
		return tftypes.String, nil
	case "number":
		return tftypes.Number, nil
	case "bool":
		return tftypes.Bool, nil
	case "dynamic":
		return tftypes.DynamicPseudoType, nil
	}
	return nil, fmt.Errorf("unknown type %q", name)
}

// valueType is the type Terraform gives a block's values on the wire. It is
// not tfprotov5.SchemaBlock.ValueType: Terraform types a list of nested blocks
// that holds a dynamic attribute as a tuple, that is as DynamicPseudoType
// (configschema.Block.ImpliedType), and the file has 35 such blocks
// (computed details such as node_config.effective_taints).
func valueType(b *tfprotov5.SchemaBlock) tftypes.Type {
	attrs := map[string]tftypes.Type{}
	for _, a := range b.Attributes {
		attrs[a.Name] = a.Type
	}
	for _, nb := range b.BlockTypes {
		inner := valueType(nb.Block)
		switch {
		case nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeSingle:
			attrs[nb.TypeName] = inner
		case hasDynamic(inner):
			attrs[nb.TypeName] = tftypes.DynamicPseudoType
		default:
			attrs[nb.TypeName] = tftypes.List{ElementType: inner}
		}
	}
	return tftypes.Object{AttributeTypes: attrs}
}

// hasDynamic reports whether t is or holds DynamicPseudoType.
func hasDynamic(t tftypes.Type) bool {
	switch tt := t.(type) {
	case tftypes.Object:
		for _, at := range tt.AttributeTypes {
			if hasDynamic(at) {
				return true
			}
		}
		return false
	case tftypes.List:
		return hasDynamic(tt.ElementType)
	case tftypes.Set:
		return hasDynamic(tt.ElementType)
	case tftypes.Map:
		return hasDynamic(tt.ElementType)
	case tftypes.Tuple:
		for _, et := range tt.ElementTypes {
			if hasDynamic(et) {
				return true
			}
		}
		return false
	}
	return t.Is(tftypes.DynamicPseudoType)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
