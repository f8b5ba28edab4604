package main

// In-process tests of the stand-in: the schema conversion, and the RPCs
// `terraform validate` and `terraform plan` call. terraform/tfcheck's
// validate_test.go runs the built binary under the real Terraform.

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

const schemaFileName = "../testdata/google-provider-6.50.0.schema.json.gz"

var loaded = sync.OnceValues(func() (*server, error) {
	f, err := loadSchemaFile(schemaFileName)
	if err != nil {
		return nil, err
	}
	return newServer(f)
})

func mustServer(t *testing.T) *server {
	t.Helper()
	s, err := loaded()
	if err != nil {
		t.Fatalf("stand-in from %s: %v", schemaFileName, err)
	}
	return s
}

// TestSchemaCoversTheFile checks that every resource and data source of
// the file is served, and that the file's rules come through.
func TestSchemaCoversTheFile(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	f, err := loadSchemaFile(schemaFileName)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(s.schema.ResourceSchemas), len(f.Resource); got != want || len(s.metadata.Resources) != want {
		t.Errorf("%d resource schemas (%d in metadata), want %d", got, len(s.metadata.Resources), want)
	}
	if got, want := len(s.schema.DataSourceSchemas), len(f.Data); got != want || len(s.metadata.DataSources) != want {
		t.Errorf("%d data source schemas (%d in metadata), want %d", got, len(s.metadata.DataSources), want)
	}

	attr := func(b *tfprotov5.SchemaBlock, name string) *tfprotov5.SchemaAttribute {
		for _, a := range b.Attributes {
			if a.Name == name {
				return a
			}
		}
		return nil
	}
	block := func(b *tfprotov5.SchemaBlock, name string) *tfprotov5.SchemaNestedBlock {
		for _, nb := range b.BlockTypes {
			if nb.TypeName == name {
				return nb
			}
		}
		t.Fatalf("no block %q", name)
		return nil
	}
	res := func(name string) *tfprotov5.SchemaBlock { return s.schema.ResourceSchemas[name].Block }

	fn := res("google_cloudfunctions2_function")
	for _, tc := range []struct {
		name     string
		nb       *tfprotov5.SchemaNestedBlock
		nesting  tfprotov5.SchemaNestedBlockNestingMode
		min, max int64
	}{
		{"single block (list false)", block(fn, "build_config"), tfprotov5.SchemaNestedBlockNestingModeList, 0, 1},
		{"list block", block(block(fn, "event_trigger").Block, "event_filters"), tfprotov5.SchemaNestedBlockNestingModeList, 0, 0},
		{"required single block", block(res("google_secret_manager_secret"), "replication"), tfprotov5.SchemaNestedBlockNestingModeList, 1, 1},
		{"timeouts", block(res("google_pubsub_subscription"), "timeouts"), tfprotov5.SchemaNestedBlockNestingModeSingle, 0, 0},
	} {
		if tc.nb.Nesting != tc.nesting || tc.nb.MinItems != tc.min || tc.nb.MaxItems != tc.max {
			t.Errorf("%s %s: nesting %v min %d max %d, want %v %d %d", tc.name, tc.nb.TypeName, tc.nb.Nesting, tc.nb.MinItems, tc.nb.MaxItems, tc.nesting, tc.min, tc.max)
		}
	}
	sa := res("google_service_account")
	for _, tc := range []struct {
		attr                         *tfprotov5.SchemaAttribute
		required, optional, computed bool
		typ                          tftypes.Type
	}{
		{attr(sa, "account_id"), true, false, false, tftypes.String},
		{attr(sa, "display_name"), false, true, false, tftypes.String},
		{attr(sa, "email"), false, false, true, tftypes.String},
		{attr(sa, "id"), false, true, true, tftypes.String},
		{attr(res("google_pubsub_topic"), "labels"), false, true, false, tftypes.Map{ElementType: tftypes.String}},
		{attr(res("google_storage_bucket"), "uniform_bucket_level_access"), false, true, false, tftypes.Bool},
	} {
		a := tc.attr
		if a.Required != tc.required || a.Optional != tc.optional || a.Computed != tc.computed || !a.Type.Equal(tc.typ) {
			t.Errorf("%s: required %v optional %v computed %v %v, want %v %v %v %v", a.Name, a.Required, a.Optional, a.Computed, a.Type, tc.required, tc.optional, tc.computed, tc.typ)
		}
	}
	if a := attr(s.schema.Provider.Block, "alias"); a != nil {
		t.Errorf("the provider schema declares alias, a meta-argument Terraform keeps for itself")
	}
	if a := attr(s.schema.Provider.Block, "project"); a == nil || !a.Optional {
		t.Errorf("the provider schema has no optional project: %+v", a)
	}
}

var validName = regexp.MustCompile(`^[a-z0-9_]+$`)

// TestSchemasAreValidForTerraform checks every converted block against the
// rules Terraform applies to a provider's schema before it uses any of it
// (configschema.Block.InternalValidate): one bad block anywhere and every
// terraform validate fails.
func TestSchemasAreValidForTerraform(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	check := func(where string, b *tfprotov5.SchemaBlock) {
		for _, err := range internalValidate(b) {
			t.Errorf("%s: %v", where, err)
		}
	}
	check("provider", s.schema.Provider.Block)
	for _, name := range sortedKeys(s.schema.ResourceSchemas) {
		check("resource "+name, s.schema.ResourceSchemas[name].Block)
	}
	for _, name := range sortedKeys(s.schema.DataSourceSchemas) {
		check("data source "+name, s.schema.DataSourceSchemas[name].Block)
	}
}

func internalValidate(b *tfprotov5.SchemaBlock) []error {
	var errs []error
	seen := map[string]bool{}
	for _, a := range b.Attributes {
		switch {
		case !validName.MatchString(a.Name):
			errs = append(errs, fmt.Errorf("attribute %q: invalid name", a.Name))
		case seen[a.Name]:
			errs = append(errs, fmt.Errorf("attribute %q: declared twice", a.Name))
		case a.Type == nil:
			errs = append(errs, fmt.Errorf("attribute %q: no type", a.Name))
		case !a.Optional && !a.Required && !a.Computed:
			errs = append(errs, fmt.Errorf("attribute %q: none of Optional, Required, Computed", a.Name))
		case a.Optional && a.Required, a.Computed && a.Required:
			errs = append(errs, fmt.Errorf("attribute %q: Required with Optional or Computed", a.Name))
		}
		seen[a.Name] = true
	}
	for _, nb := range b.BlockTypes {
		switch {
		case !validName.MatchString(nb.TypeName):
			errs = append(errs, fmt.Errorf("block %q: invalid name", nb.TypeName))
		case seen[nb.TypeName]:
			errs = append(errs, fmt.Errorf("block %q: name already used", nb.TypeName))
		case nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeSingle && (nb.MinItems > 1 || nb.MaxItems > 1 || nb.MinItems != nb.MaxItems):
			errs = append(errs, fmt.Errorf("block %q: single block with min %d max %d", nb.TypeName, nb.MinItems, nb.MaxItems))
		case nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeList && nb.MaxItems != 0 && nb.MinItems > nb.MaxItems:
			errs = append(errs, fmt.Errorf("block %q: min %d > max %d", nb.TypeName, nb.MinItems, nb.MaxItems))
		case nb.Nesting != tfprotov5.SchemaNestedBlockNestingModeList && nb.Nesting != tfprotov5.SchemaNestedBlockNestingModeSingle:
			errs = append(errs, fmt.Errorf("block %q: nesting %v", nb.TypeName, nb.Nesting))
		}
		seen[nb.TypeName] = true
		for _, err := range internalValidate(nb.Block) {
			errs = append(errs, fmt.Errorf("%s.%w", nb.TypeName, err))
		}
	}
	return errs
}

// object is a configuration value of block b as Terraform sends it: every
// attribute null but those set, every absent list block an empty list (a
// tuple when the block holds a dynamic attribute), a single one null.
func object(t *testing.T, b *tfprotov5.SchemaBlock, set map[string]tftypes.Value) tftypes.Value {
	t.Helper()
	typ := valueType(b).(tftypes.Object)
	vals := map[string]tftypes.Value{}
	for _, a := range b.Attributes {
		vals[a.Name] = tftypes.NewValue(a.Type, nil)
	}
	for _, nb := range b.BlockTypes {
		at := typ.AttributeTypes[nb.TypeName]
		switch {
		case nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeSingle:
			vals[nb.TypeName] = tftypes.NewValue(at, nil)
		case at.Is(tftypes.DynamicPseudoType):
			vals[nb.TypeName] = tftypes.NewValue(tftypes.Tuple{ElementTypes: []tftypes.Type{}}, []tftypes.Value{})
		default:
			vals[nb.TypeName] = tftypes.NewValue(at, []tftypes.Value{})
		}
	}
	for k, v := range set {
		if _, ok := vals[k]; !ok {
			t.Fatalf("no attribute or block %q", k)
		}
		vals[k] = v
	}
	return tftypes.NewValue(typ, vals)
}

func nestedBlock(t *testing.T, b *tfprotov5.SchemaBlock, name string) *tfprotov5.SchemaBlock {
	t.Helper()
	for _, nb := range b.BlockTypes {
		if nb.TypeName == name {
			return nb.Block
		}
	}
	t.Fatalf("no block %q", name)
	return nil
}

func dynamicValue(t *testing.T, typ tftypes.Type, v tftypes.Value) *tfprotov5.DynamicValue {
	t.Helper()
	dv, err := tfprotov5.NewDynamicValue(typ, v)
	if err != nil {
		t.Fatal(err)
	}
	return &dv
}

// get follows a path of attribute names and list indexes (int) in v.
func get(t *testing.T, v tftypes.Value, steps ...any) tftypes.Value {
	t.Helper()
	p := tftypes.NewAttributePath()
	for _, s := range steps {
		switch s := s.(type) {
		case string:
			p = p.WithAttributeName(s)
		case int:
			p = p.WithElementKeyInt(s)
		}
	}
	got, _, err := tftypes.WalkAttributePath(v, p)
	if err != nil {
		t.Fatalf("%v: %v", p, err)
	}
	return got.(tftypes.Value)
}

func TestPlanResourceChange(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	ctx := context.Background()
	const typeName = "google_cloudfunctions2_function"
	ts := s.resources[typeName]
	svc := object(t, nestedBlock(t, ts.block, "service_config"), map[string]tftypes.Value{
		"available_memory": tftypes.NewValue(tftypes.String, "256Mi"),
	})
	proposed := object(t, ts.block, map[string]tftypes.Value{
		"name":           tftypes.NewValue(tftypes.String, "f"),
		"location":       tftypes.NewValue(tftypes.String, "us-central1"),
		"service_config": tftypes.NewValue(tftypes.List{ElementType: svc.Type()}, []tftypes.Value{svc}),
	})
	null := dynamicValue(t, ts.typ, tftypes.NewValue(ts.typ, nil))

	t.Run("create", func(t *testing.T) {
		resp, err := s.PlanResourceChange(ctx, &tfprotov5.PlanResourceChangeRequest{
			TypeName: typeName, PriorState: null, ProposedNewState: dynamicValue(t, ts.typ, proposed), Config: dynamicValue(t, ts.typ, proposed),
		})
		if err != nil || len(resp.Diagnostics) > 0 {
			t.Fatalf("plan: %v %v", err, resp.Diagnostics)
		}
		planned, err := resp.PlannedState.Unmarshal(ts.typ)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			path  []any
			known bool
		}{
			{[]any{"url"}, false},                                    // computed
			{[]any{"id"}, false},                                     // optional and computed, not set
			{[]any{"service_config", 0, "uri"}, false},               // computed, in a nested block
			{[]any{"name"}, true},                                    // set
			{[]any{"description"}, true},                             // optional, stays null
			{[]any{"service_config", 0, "available_memory"}, true},   // set
			{[]any{"service_config", 0, "max_instance_count"}, true}, // optional, stays null
		} {
			if got := get(t, planned, tc.path...); got.IsKnown() != tc.known {
				t.Errorf("%v: known %v, want %v (%v)", tc.path, got.IsKnown(), tc.known, got)
			}
		}
		if got := get(t, planned, "service_config", 0, "available_memory"); !got.Equal(tftypes.NewValue(tftypes.String, "256Mi")) {
			t.Errorf("available_memory planned as %v", got)
		}
	})

	t.Run("update and destroy plan the proposed state", func(t *testing.T) {
		prior := dynamicValue(t, ts.typ, proposed)
		for _, next := range []*tfprotov5.DynamicValue{prior, null} {
			resp, err := s.PlanResourceChange(ctx, &tfprotov5.PlanResourceChangeRequest{TypeName: typeName, PriorState: prior, ProposedNewState: next})
			if err != nil || len(resp.Diagnostics) > 0 || resp.PlannedState != next {
				t.Errorf("plan: %v %v: planned %v, want the proposed state", err, resp.Diagnostics, resp.PlannedState)
			}
		}
	})

	t.Run("apply is refused", func(t *testing.T) {
		resp, err := s.ApplyResourceChange(ctx, &tfprotov5.ApplyResourceChangeRequest{TypeName: typeName})
		if err != nil || len(resp.Diagnostics) != 1 || resp.Diagnostics[0].Severity != tfprotov5.DiagnosticSeverityError {
			t.Errorf("apply: %v %v, want one error", err, resp.Diagnostics)
		}
	})
}

// TestPlanListBlockWithDynamicAttribute plans a resource whose list block
// holds a dynamic attribute, which Terraform sends as a tuple.
func TestPlanListBlockWithDynamicAttribute(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	const typeName = "google_container_node_pool"
	ts := s.resources[typeName]
	if !ts.typ.(tftypes.Object).AttributeTypes["node_config"].Is(tftypes.DynamicPseudoType) {
		t.Fatalf("node_config should travel as a tuple (DynamicPseudoType), is %v", ts.typ.(tftypes.Object).AttributeTypes["node_config"])
	}
	nc := object(t, nestedBlock(t, ts.block, "node_config"), map[string]tftypes.Value{
		"machine_type": tftypes.NewValue(tftypes.String, "e2-small"),
	})
	proposed := object(t, ts.block, map[string]tftypes.Value{
		"cluster":     tftypes.NewValue(tftypes.String, "c"),
		"node_config": tftypes.NewValue(tftypes.Tuple{ElementTypes: []tftypes.Type{nc.Type()}}, []tftypes.Value{nc}),
	})
	resp, err := s.PlanResourceChange(context.Background(), &tfprotov5.PlanResourceChangeRequest{
		TypeName: typeName, ProposedNewState: dynamicValue(t, ts.typ, proposed),
	})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("plan: %v %v", err, resp.Diagnostics)
	}
	planned, err := resp.PlannedState.Unmarshal(ts.typ)
	if err != nil {
		t.Fatal(err)
	}
	if got := get(t, planned, "node_config", 0, "effective_taints"); got.IsKnown() {
		t.Errorf("effective_taints (computed, dynamic) planned as %v, want unknown", got)
	}
	if got := get(t, planned, "node_config", 0, "machine_type"); !got.Equal(tftypes.NewValue(tftypes.String, "e2-small")) {
		t.Errorf("machine_type planned as %v", got)
	}
}

func TestReadDataSourceIsKnown(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	ts := s.data["google_project"]
	cfg := object(t, ts.block, map[string]tftypes.Value{"project_id": tftypes.NewValue(tftypes.String, "p")})
	resp, err := s.ReadDataSource(context.Background(), &tfprotov5.ReadDataSourceRequest{TypeName: "google_project", Config: dynamicValue(t, ts.typ, cfg)})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("read: %v %v", err, resp.Diagnostics)
	}
	state, err := resp.State.Unmarshal(ts.typ)
	if err != nil {
		t.Fatal(err)
	}
	if !state.IsFullyKnown() {
		t.Errorf("state %v is not wholly known: Terraform refuses unknown values from a read", state)
	}
	for attr, want := range map[string]tftypes.Value{
		"project_id": tftypes.NewValue(tftypes.String, "p"),
		"number":     tftypes.NewValue(tftypes.String, ""),
		"labels":     tftypes.NewValue(tftypes.Map{ElementType: tftypes.String}, map[string]tftypes.Value{}),
	} {
		if got := get(t, state, attr); !got.Equal(want) {
			t.Errorf("%s = %v, want %v", attr, got, want)
		}
	}
}

// TestValidateRefusesComputedOnly checks the one rule the Validate calls
// enforce, with the path Terraform points the diagnostic at.
func TestValidateRefusesComputedOnly(t *testing.T) {
	t.Parallel()
	s := mustServer(t)
	ctx := context.Background()
	fn := s.resources["google_cloudfunctions2_function"]
	svc := object(t, nestedBlock(t, fn.block, "service_config"), map[string]tftypes.Value{
		"uri": tftypes.NewValue(tftypes.String, tftypes.UnknownValue), // a reference is refused too
	})
	sa := s.resources["google_service_account"]
	for _, tc := range []struct {
		name     string
		typeName string
		ts       typedSchema
		config   tftypes.Value
		want     *tftypes.AttributePath
	}{
		{"top level", "google_service_account", sa, object(t, sa.block, map[string]tftypes.Value{
			"account_id": tftypes.NewValue(tftypes.String, "a"),
			"email":      tftypes.NewValue(tftypes.String, "a@b"),
		}), tftypes.NewAttributePath().WithAttributeName("email")},
		{"nested", "google_cloudfunctions2_function", fn, object(t, fn.block, map[string]tftypes.Value{
			"service_config": tftypes.NewValue(tftypes.List{ElementType: svc.Type()}, []tftypes.Value{svc}),
		}), tftypes.NewAttributePath().WithAttributeName("service_config").WithElementKeyInt(0).WithAttributeName("uri")},
		{"optional and computed id may be set", "google_service_account", sa, object(t, sa.block, map[string]tftypes.Value{
			"id": tftypes.NewValue(tftypes.String, "x"),
		}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := s.ValidateResourceTypeConfig(ctx, &tfprotov5.ValidateResourceTypeConfigRequest{TypeName: tc.typeName, Config: dynamicValue(t, tc.ts.typ, tc.config)})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == nil && len(resp.Diagnostics) > 0:
				t.Errorf("want no diagnostics, got %v", resp.Diagnostics)
			case tc.want != nil && (len(resp.Diagnostics) != 1 || !resp.Diagnostics[0].Attribute.Equal(tc.want) || resp.Diagnostics[0].Summary != "Value for unconfigurable attribute"):
				t.Errorf("want one unconfigurable-attribute error at %v, got %v", tc.want, resp.Diagnostics)
			}
		})
	}
}
