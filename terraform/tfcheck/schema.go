package tfcheck

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
)

// Schema is the provider schema in the format of
// shared/terraform/README.md: every resource and data source as a Block.
type Schema struct {
	Provider string            `json:"provider"`
	Version  string            `json:"version"`
	Resource map[string]*Block `json:"resource"`
	Data     map[string]*Block `json:"data"`
}

// Block is one block's arguments and nested blocks.
type Block struct {
	Attributes map[string]*Attribute   `json:"attributes"`
	Blocks     map[string]*NestedBlock `json:"blocks"`
}

// Attribute is one argument or exported attribute. Computed marks an
// attribute only the provider sets.
type Attribute struct {
	Required bool            `json:"required"`
	Computed bool            `json:"computed"`
	Type     json.RawMessage `json:"type"`
}

// NestedBlock is a block type inside a Block. List false: at most one.
type NestedBlock struct {
	Required bool   `json:"required"`
	List     bool   `json:"list"`
	Block    *Block `json:"block"`
}

// LoadSchema reads a schema file, gzip-compressed when its name ends in .gz.
func LoadSchema(path string) (*Schema, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var dec *json.Decoder
	if len(path) > 3 && path[len(path)-3:] == ".gz" {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		dec = json.NewDecoder(zr)
	} else {
		dec = json.NewDecoder(f)
	}
	var s Schema
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(s.Resource) == 0 {
		return nil, fmt.Errorf("%s: no resources in schema", path)
	}
	return &s, nil
}
