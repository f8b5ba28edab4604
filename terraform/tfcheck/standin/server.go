package main

import (
	"context"
	"fmt"
	"math/big"

	"github.com/hashicorp/terraform-plugin-go/tfprotov5"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// server answers Terraform's protocol 5 calls from the converted schema.
// Every answer is computed from the request and the schema alone: there is
// no state, no credentials and no network.
type server struct {
	provider  typedSchema
	schema    *tfprotov5.GetProviderSchemaResponse
	metadata  *tfprotov5.GetMetadataResponse
	resources map[string]typedSchema
	data      map[string]typedSchema
}

// typedSchema is a schema with the type Terraform encodes its values with.
type typedSchema struct {
	block *tfprotov5.SchemaBlock
	typ   tftypes.Type
}

// capabilities: PlanDestroy because PlanResourceChange answers a destroy
// (a null proposed state) correctly; no GetProviderSchemaOptional, so
// Terraform always asks for the schema, as the real provider wants.
var capabilities = &tfprotov5.ServerCapabilities{PlanDestroy: true}

var _ tfprotov5.ProviderServer = (*server)(nil)

// newServer converts every block of f once, so each RPC only looks it up.
func newServer(f *schemaFile) (*server, error) {
	s := &server{
		schema: &tfprotov5.GetProviderSchemaResponse{
			ServerCapabilities:       capabilities,
			ResourceSchemas:          map[string]*tfprotov5.Schema{},
			DataSourceSchemas:        map[string]*tfprotov5.Schema{},
			Functions:                map[string]*tfprotov5.Function{},
			EphemeralResourceSchemas: map[string]*tfprotov5.Schema{},
		},
		metadata:  &tfprotov5.GetMetadataResponse{ServerCapabilities: capabilities},
		resources: map[string]typedSchema{},
		data:      map[string]typedSchema{},
	}
	provider, err := convertBlock(f.ProviderConfig, true, providerMeta)
	if err != nil {
		return nil, fmt.Errorf("provider_config: %w", err)
	}
	s.schema.Provider = &tfprotov5.Schema{Block: provider}
	s.provider = typedSchema{block: provider, typ: valueType(provider)}
	for _, name := range sortedKeys(f.Resource) {
		b, err := convertBlock(f.Resource[name], true, nil)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", name, err)
		}
		s.schema.ResourceSchemas[name] = &tfprotov5.Schema{Block: b}
		s.resources[name] = typedSchema{block: b, typ: valueType(b)}
		s.metadata.Resources = append(s.metadata.Resources, tfprotov5.ResourceMetadata{TypeName: name})
	}
	for _, name := range sortedKeys(f.Data) {
		b, err := convertBlock(f.Data[name], true, nil)
		if err != nil {
			return nil, fmt.Errorf("data source %s: %w", name, err)
		}
		s.schema.DataSourceSchemas[name] = &tfprotov5.Schema{Block: b}
		s.data[name] = typedSchema{block: b, typ: valueType(b)}
		s.metadata.DataSources = append(s.metadata.DataSources, tfprotov5.DataSourceMetadata{TypeName: name})
	}
	return s, nil
}

func errorDiags(summary, format string, args ...any) []*tfprotov5.Diagnostic {
	return []*tfprotov5.Diagnostic{{
		Severity: tfprotov5.DiagnosticSeverityError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
	}}
}

// notSupported is the answer to what a stand-in must not pretend to do.
func notSupported(what, typeName string) []*tfprotov5.Diagnostic {
	return errorDiags("Not supported by the stand-in google provider",
		"%s %s: this provider (terraform/tfcheck/standin) only serves the hashicorp/google 6.50.0 schema so that terraform validate and plan run offline; it cannot create, change, import or move real objects.", what, typeName)
}

func unknownType(kind, typeName string) []*tfprotov5.Diagnostic {
	return errorDiags("Unknown "+kind, "%s %q is not in the hashicorp/google 6.50.0 schema.", kind, typeName)
}

//-- Provider --//

func (s *server) GetMetadata(context.Context, *tfprotov5.GetMetadataRequest) (*tfprotov5.GetMetadataResponse, error) {
	return s.metadata, nil
}

func (s *server) GetProviderSchema(context.Context, *tfprotov5.GetProviderSchemaRequest) (*tfprotov5.GetProviderSchemaResponse, error) {
	return s.schema, nil
}

func (s *server) GetResourceIdentitySchemas(context.Context, *tfprotov5.GetResourceIdentitySchemasRequest) (*tfprotov5.GetResourceIdentitySchemasResponse, error) {
	return &tfprotov5.GetResourceIdentitySchemasResponse{IdentitySchemas: map[string]*tfprotov5.ResourceIdentitySchema{}}, nil
}

// PrepareProviderConfig is ValidateProviderConfig of protocol 5: Terraform
// uses the prepared config it returns, so the config goes back unchanged.
func (s *server) PrepareProviderConfig(_ context.Context, req *tfprotov5.PrepareProviderConfigRequest) (*tfprotov5.PrepareProviderConfigResponse, error) {
	return &tfprotov5.PrepareProviderConfigResponse{
		PreparedConfig: req.Config,
		Diagnostics:    validateConfig("provider", s.provider, req.Config),
	}, nil
}

func (s *server) ConfigureProvider(context.Context, *tfprotov5.ConfigureProviderRequest) (*tfprotov5.ConfigureProviderResponse, error) {
	return &tfprotov5.ConfigureProviderResponse{}, nil
}

func (s *server) StopProvider(context.Context, *tfprotov5.StopProviderRequest) (*tfprotov5.StopProviderResponse, error) {
	return &tfprotov5.StopProviderResponse{}, nil
}

//-- Resources --//

// ValidateResourceTypeConfig checks the one rule of the schema Terraform
// leaves to the provider (see validateConfig); the file has no validation
// rules of values.
func (s *server) ValidateResourceTypeConfig(_ context.Context, req *tfprotov5.ValidateResourceTypeConfigRequest) (*tfprotov5.ValidateResourceTypeConfigResponse, error) {
	ts, ok := s.resources[req.TypeName]
	if !ok {
		return &tfprotov5.ValidateResourceTypeConfigResponse{Diagnostics: unknownType("resource type", req.TypeName)}, nil
	}
	return &tfprotov5.ValidateResourceTypeConfigResponse{Diagnostics: validateConfig(req.TypeName, ts, req.Config)}, nil
}

// UpgradeResourceState decodes a stored state with the current schema,
// dropping attributes the schema no longer has.
func (s *server) UpgradeResourceState(_ context.Context, req *tfprotov5.UpgradeResourceStateRequest) (*tfprotov5.UpgradeResourceStateResponse, error) {
	ts, ok := s.resources[req.TypeName]
	if !ok {
		return &tfprotov5.UpgradeResourceStateResponse{Diagnostics: unknownType("resource type", req.TypeName)}, nil
	}
	if req.RawState == nil || req.RawState.JSON == nil {
		return &tfprotov5.UpgradeResourceStateResponse{Diagnostics: notSupported("Upgrading a pre-0.12 (flatmap) state of", req.TypeName)}, nil
	}
	val, err := req.RawState.UnmarshalWithOpts(ts.typ, tfprotov5.UnmarshalOpts{
		ValueFromJSONOpts: tftypes.ValueFromJSONOpts{IgnoreUndefinedAttributes: true},
	})
	if err != nil {
		return &tfprotov5.UpgradeResourceStateResponse{Diagnostics: errorDiags("Cannot read the stored state", "%s: %v", req.TypeName, err)}, nil
	}
	dv, err := tfprotov5.NewDynamicValue(ts.typ, val)
	if err != nil {
		return nil, fmt.Errorf("encoding the state of %s: %w", req.TypeName, err)
	}
	return &tfprotov5.UpgradeResourceStateResponse{UpgradedState: &dv}, nil
}

// ReadResource finds the object as it was: there is no cloud to ask.
func (s *server) ReadResource(_ context.Context, req *tfprotov5.ReadResourceRequest) (*tfprotov5.ReadResourceResponse, error) {
	return &tfprotov5.ReadResourceResponse{NewState: req.CurrentState, Private: req.Private}, nil
}

// PlanResourceChange plans the proposed new state. On create, computed
// attributes the configuration leaves null become unknown ("known after
// apply"), as the real provider plans them; on update and destroy the
// proposed state, which carries the prior computed values, is the plan.
func (s *server) PlanResourceChange(_ context.Context, req *tfprotov5.PlanResourceChangeRequest) (*tfprotov5.PlanResourceChangeResponse, error) {
	ts, ok := s.resources[req.TypeName]
	if !ok {
		return &tfprotov5.PlanResourceChangeResponse{Diagnostics: unknownType("resource type", req.TypeName)}, nil
	}
	creating := req.PriorState == nil
	if !creating {
		null, err := req.PriorState.IsNull()
		if err != nil {
			return nil, fmt.Errorf("reading the prior state of %s: %w", req.TypeName, err)
		}
		creating = null
	}
	if !creating {
		return &tfprotov5.PlanResourceChangeResponse{PlannedState: req.ProposedNewState, PlannedPrivate: req.PriorPrivate}, nil
	}
	proposed, err := req.ProposedNewState.Unmarshal(ts.typ)
	if err != nil {
		return nil, fmt.Errorf("decoding the proposed state of %s: %w", req.TypeName, err)
	}
	planned, err := fillComputed(ts.block, proposed, func(t tftypes.Type) tftypes.Value {
		return tftypes.NewValue(t, tftypes.UnknownValue)
	})
	if err != nil {
		return nil, fmt.Errorf("planning %s: %w", req.TypeName, err)
	}
	dv, err := tfprotov5.NewDynamicValue(ts.typ, planned)
	if err != nil {
		return nil, fmt.Errorf("encoding the plan of %s: %w", req.TypeName, err)
	}
	return &tfprotov5.PlanResourceChangeResponse{PlannedState: &dv}, nil
}

func (s *server) ApplyResourceChange(_ context.Context, req *tfprotov5.ApplyResourceChangeRequest) (*tfprotov5.ApplyResourceChangeResponse, error) {
	return &tfprotov5.ApplyResourceChangeResponse{Diagnostics: notSupported("Applying", req.TypeName)}, nil
}

func (s *server) ImportResourceState(_ context.Context, req *tfprotov5.ImportResourceStateRequest) (*tfprotov5.ImportResourceStateResponse, error) {
	return &tfprotov5.ImportResourceStateResponse{Diagnostics: notSupported("Importing", req.TypeName)}, nil
}

func (s *server) MoveResourceState(_ context.Context, req *tfprotov5.MoveResourceStateRequest) (*tfprotov5.MoveResourceStateResponse, error) {
	return &tfprotov5.MoveResourceStateResponse{Diagnostics: notSupported("Moving state into", req.TargetTypeName)}, nil
}

func (s *server) UpgradeResourceIdentity(_ context.Context, req *tfprotov5.UpgradeResourceIdentityRequest) (*tfprotov5.UpgradeResourceIdentityResponse, error) {
	return &tfprotov5.UpgradeResourceIdentityResponse{Diagnostics: notSupported("Upgrading the identity of", req.TypeName)}, nil
}

func (s *server) GenerateResourceConfig(_ context.Context, req *tfprotov5.GenerateResourceConfigRequest) (*tfprotov5.GenerateResourceConfigResponse, error) {
	return &tfprotov5.GenerateResourceConfigResponse{Diagnostics: notSupported("Generating configuration for", req.TypeName)}, nil
}

//-- Data sources --//

func (s *server) ValidateDataSourceConfig(_ context.Context, req *tfprotov5.ValidateDataSourceConfigRequest) (*tfprotov5.ValidateDataSourceConfigResponse, error) {
	ts, ok := s.data[req.TypeName]
	if !ok {
		return &tfprotov5.ValidateDataSourceConfigResponse{Diagnostics: unknownType("data source", req.TypeName)}, nil
	}
	return &tfprotov5.ValidateDataSourceConfigResponse{Diagnostics: validateConfig("data source "+req.TypeName, ts, req.Config)}, nil
}

// ReadDataSource answers with the configuration and a zero value ("", 0,
// false, empty collections) in every computed attribute left null. Terraform
// refuses unknown values from a read, and nulls would break expressions such
// as "service-${data.google_project.this.number}" in a plan.
func (s *server) ReadDataSource(_ context.Context, req *tfprotov5.ReadDataSourceRequest) (*tfprotov5.ReadDataSourceResponse, error) {
	ts, ok := s.data[req.TypeName]
	if !ok {
		return &tfprotov5.ReadDataSourceResponse{Diagnostics: unknownType("data source", req.TypeName)}, nil
	}
	cfg, err := req.Config.Unmarshal(ts.typ)
	if err != nil {
		return nil, fmt.Errorf("decoding the configuration of data source %s: %w", req.TypeName, err)
	}
	state, err := fillComputed(ts.block, cfg, zeroValue)
	if err != nil {
		return nil, fmt.Errorf("reading data source %s: %w", req.TypeName, err)
	}
	dv, err := tfprotov5.NewDynamicValue(ts.typ, state)
	if err != nil {
		return nil, fmt.Errorf("encoding data source %s: %w", req.TypeName, err)
	}
	return &tfprotov5.ReadDataSourceResponse{State: &dv}, nil
}

//-- What the provider does not have: functions, ephemeral resources --//

func (s *server) GetFunctions(context.Context, *tfprotov5.GetFunctionsRequest) (*tfprotov5.GetFunctionsResponse, error) {
	return &tfprotov5.GetFunctionsResponse{Functions: map[string]*tfprotov5.Function{}}, nil
}

func (s *server) CallFunction(_ context.Context, req *tfprotov5.CallFunctionRequest) (*tfprotov5.CallFunctionResponse, error) {
	return &tfprotov5.CallFunctionResponse{Error: &tfprotov5.FunctionError{
		Text: fmt.Sprintf("function %q: the stand-in google provider declares no functions", req.Name),
	}}, nil
}

func (s *server) ValidateEphemeralResourceConfig(_ context.Context, req *tfprotov5.ValidateEphemeralResourceConfigRequest) (*tfprotov5.ValidateEphemeralResourceConfigResponse, error) {
	return &tfprotov5.ValidateEphemeralResourceConfigResponse{Diagnostics: unknownType("ephemeral resource type", req.TypeName)}, nil
}

func (s *server) OpenEphemeralResource(_ context.Context, req *tfprotov5.OpenEphemeralResourceRequest) (*tfprotov5.OpenEphemeralResourceResponse, error) {
	return &tfprotov5.OpenEphemeralResourceResponse{Diagnostics: unknownType("ephemeral resource type", req.TypeName)}, nil
}

func (s *server) RenewEphemeralResource(_ context.Context, req *tfprotov5.RenewEphemeralResourceRequest) (*tfprotov5.RenewEphemeralResourceResponse, error) {
	return &tfprotov5.RenewEphemeralResourceResponse{Diagnostics: unknownType("ephemeral resource type", req.TypeName)}, nil
}

func (s *server) CloseEphemeralResource(_ context.Context, req *tfprotov5.CloseEphemeralResourceRequest) (*tfprotov5.CloseEphemeralResourceResponse, error) {
	return &tfprotov5.CloseEphemeralResourceResponse{Diagnostics: unknownType("ephemeral resource type", req.TypeName)}, nil
}

//-- Values --//

// validateConfig reports every computed-only attribute the configuration
// sets. Terraform's own decoding accepts them (they are in the schema); the
// real provider refuses them in its Validate* calls, as the plugin SDK does
// for every provider built with it, with this summary and detail. Nothing
// else is checked.
func validateConfig(where string, ts typedSchema, config *tfprotov5.DynamicValue) []*tfprotov5.Diagnostic {
	if config == nil {
		return nil
	}
	v, err := config.Unmarshal(ts.typ)
	if err != nil {
		// The stand-in's types disagree with Terraform's: a bug here, not
		// in the configuration, but validation cannot be trusted.
		return errorDiags("Stand-in google provider cannot decode the configuration", "%s: %v", where, err)
	}
	return configuredComputed(ts.block, v, tftypes.NewAttributePath())
}

func configuredComputed(b *tfprotov5.SchemaBlock, v tftypes.Value, path *tftypes.AttributePath) []*tfprotov5.Diagnostic {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	var attrs map[string]tftypes.Value
	if err := v.As(&attrs); err != nil {
		return errorDiags("Stand-in google provider cannot decode the configuration", "%s: want an object: %v", path, err)
	}
	var diags []*tfprotov5.Diagnostic
	for _, a := range b.Attributes {
		if cur, ok := attrs[a.Name]; ok && a.Computed && !a.Optional && !cur.IsNull() {
			diags = append(diags, &tfprotov5.Diagnostic{
				Severity:  tfprotov5.DiagnosticSeverityError,
				Summary:   "Value for unconfigurable attribute",
				Detail:    fmt.Sprintf("Can't configure a value for %q: its value will be decided automatically based on the result of applying this configuration.", a.Name),
				Attribute: path.WithAttributeName(a.Name),
			})
		}
	}
	for _, nb := range b.BlockTypes {
		cur, ok := attrs[nb.TypeName]
		if !ok || cur.IsNull() || !cur.IsKnown() {
			continue
		}
		at := path.WithAttributeName(nb.TypeName)
		if nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeSingle {
			diags = append(diags, configuredComputed(nb.Block, cur, at)...)
			continue
		}
		var elems []tftypes.Value
		if err := cur.As(&elems); err != nil {
			return append(diags, errorDiags("Stand-in google provider cannot decode the configuration", "%s: want a list of blocks: %v", at, err)...)
		}
		for i, el := range elems {
			diags = append(diags, configuredComputed(nb.Block, el, at.WithElementKeyInt(i))...)
		}
	}
	return diags
}

// fillComputed returns v with every computed attribute that is null, in the
// block and in its nested blocks, replaced by fill(attribute type).
func fillComputed(b *tfprotov5.SchemaBlock, v tftypes.Value, fill func(tftypes.Type) tftypes.Value) (tftypes.Value, error) {
	if v.IsNull() || !v.IsKnown() {
		return v, nil
	}
	var attrs map[string]tftypes.Value
	if err := v.As(&attrs); err != nil {
		return v, fmt.Errorf("want an object: %w", err)
	}
	for _, a := range b.Attributes {
		if cur, ok := attrs[a.Name]; a.Computed && (!ok || cur.IsNull()) {
			attrs[a.Name] = fill(a.Type)
		}
	}
	for _, nb := range b.BlockTypes {
		cur, ok := attrs[nb.TypeName]
		if !ok || cur.IsNull() || !cur.IsKnown() {
			continue
		}
		if nb.Nesting == tfprotov5.SchemaNestedBlockNestingModeSingle {
			nv, err := fillComputed(nb.Block, cur, fill)
			if err != nil {
				return v, fmt.Errorf("%s: %w", nb.TypeName, err)
			}
			attrs[nb.TypeName] = nv
			continue
		}
		// A list of blocks, or a tuple where the block holds a dynamic
		// attribute (see valueType): either way a sequence of objects.
		var elems []tftypes.Value
		if err := cur.As(&elems); err != nil {
			return v, fmt.Errorf("%s: want a list of blocks: %w", nb.TypeName, err)
		}
		out := make([]tftypes.Value, len(elems))
		for i, el := range elems {
			nv, err := fillComputed(nb.Block, el, fill)
			if err != nil {
				return v, fmt.Errorf("%s[%d]: %w", nb.TypeName, i, err)
			}
			out[i] = nv
		}
		// Filling keeps every type: a null of an attribute's type becomes a
		// value of that type, and a dynamic one stays DynamicPseudoType.
		nv, err := newValue(cur.Type(), out)
		if err != nil {
			return v, fmt.Errorf("%s: %w", nb.TypeName, err)
		}
		attrs[nb.TypeName] = nv
	}
	return newValue(v.Type(), attrs)
}

// newValue is tftypes.NewValue returning an error instead of panicking.
func newValue(t tftypes.Type, v any) (tftypes.Value, error) {
	if err := tftypes.ValidateValue(t, v); err != nil {
		return tftypes.Value{}, err
	}
	return tftypes.NewValue(t, v), nil
}

// zeroValue is the known value a read gives a computed attribute of type t.
func zeroValue(t tftypes.Type) tftypes.Value {
	switch tt := t.(type) {
	case tftypes.List:
		return tftypes.NewValue(tt, []tftypes.Value{})
	case tftypes.Map:
		return tftypes.NewValue(tt, map[string]tftypes.Value{})
	}
	switch {
	case t.Is(tftypes.String):
		return tftypes.NewValue(t, "")
	case t.Is(tftypes.Number):
		return tftypes.NewValue(t, big.NewFloat(0))
	case t.Is(tftypes.Bool):
		return tftypes.NewValue(t, false)
	}
	// DynamicPseudoType: no type to make a zero value of; null is known.
	return tftypes.NewValue(t, nil)
}
