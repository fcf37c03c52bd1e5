package engine

import (
	"context"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/search"
	"github.com/sharedcare/sharedcare/internal/validate"
)

// Capabilities returns the server's CapabilityStatement: exactly the
// interactions, search parameters and operations this engine implements,
// nothing more. Callers may modify the result.
func (e *Engine) Capabilities() fhir.Object {
	return fhir.Clone(e.cap).(fhir.Object)
}

func (e *Engine) capabilities() fhir.Object {
	interactions := []any{}
	for _, code := range []string{"read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"} {
		interactions = append(interactions, fhir.Object{"code": code})
	}
	resources := []any{}
	for _, typ := range r4.ResourceTypes() {
		params := []any{}
		for _, sp := range search.Params(typ) {
			p := fhir.Object{"name": sp.Name, "type": sp.Type, "documentation": sp.Doc}
			if sp.Definition != "" {
				p["definition"] = sp.Definition
			}
			params = append(params, p)
		}
		resources = append(resources, fhir.Object{
			"type":              typ,
			"interaction":       interactions,
			"versioning":        "versioned-update",
			"readHistory":       true,
			"updateCreate":      true,
			"conditionalCreate": true,
			// Conditional read headers (If-None-Match, If-Modified-Since)
			// are answered by the HTTP layer.
			"conditionalRead":   "full-support",
			"conditionalUpdate": true,
			"conditionalDelete": "single",
			"searchParam":       params,
			"searchInclude":     []any{"*"},
			"searchRevInclude":  []any{"*"},
			"operation":         e.operations(typ),
		})
	}
	impl := fhir.Object{"description": "sharedcare FHIR R4 server"}
	if e.cfg.BaseURL != "" {
		impl["url"] = e.cfg.BaseURL
	}
	return fhir.Object{
		"resourceType":   "CapabilityStatement",
		"status":         "active",
		"date":           "2026-11-22",
		"kind":           "instance",
		"software":       fhir.Object{"name": "sharedcare"},
		"implementation": impl,
		"fhirVersion":    r4.Version,
		"format":         []any{"json"},
		"patchFormat":    []any{"application/json-patch+json"},
		"rest": []any{fhir.Object{
			"mode": "server",
			"security": fhir.Object{
				"description": "Every request except GET /metadata needs an OAuth-style Bearer access token (Authorization: Bearer); a missing or invalid token gets 401.",
			},
			"resource": resources,
			"interaction": []any{
				fhir.Object{"code": "transaction"},
				fhir.Object{"code": "batch"},
				fhir.Object{"code": "history-system"},
				fhir.Object{"code": "search-system"},
			},
			"searchParam": []any{
				fhir.Object{"name": "_id", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-id"},
				fhir.Object{"name": "_lastUpdated", "type": "date", "definition": "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated"},
				fhir.Object{"name": "_tag", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-tag"},
				fhir.Object{"name": "_profile", "type": "uri", "definition": "http://hl7.org/fhir/SearchParameter/Resource-profile"},
				fhir.Object{"name": "_security", "type": "token", "definition": "http://hl7.org/fhir/SearchParameter/Resource-security"},
				fhir.Object{"name": "_source", "type": "uri", "definition": "http://hl7.org/fhir/SearchParameter/Resource-source"},
				fhir.Object{"name": "_content", "type": "string", "definition": "http://hl7.org/fhir/SearchParameter/Resource-content"},
			},
		}},
	}
}

// Validate checks a resource without storing it ($validate) and returns an
// OperationOutcome: the problems found, or one information issue when the
// resource is valid. An invalid resource is a successful validation (the
// outcome lists its errors, and the error is nil); only a body that is not a
// resource of type typ at all is an error. typ may be "" for any type.
func (e *Engine) Validate(ctx context.Context, typ string, body []byte, o WriteOptions) (fhir.Object, error) {
	if typ != "" {
		if err := checkType(typ); err != nil {
			return nil, err
		}
	}
	res, err := fhir.ParseObject(body, 0)
	if err != nil {
		return nil, err
	}
	// $validate may carry the resource in a Parameters resource.
	if rt, _ := res["resourceType"].(string); rt == "Parameters" && typ != "Parameters" {
		params, _ := res["parameter"].([]any)
		var found fhir.Object
		for _, p := range params {
			if po, ok := p.(fhir.Object); ok && po["name"] == "resource" {
				found, _ = po["resource"].(fhir.Object)
			}
		}
		if found == nil {
			return nil, fhir.Invalid("Parameters.parameter", "the Parameters have no resource parameter")
		}
		res = found
	}
	rt, _ := res["resourceType"].(string)
	if typ == "" {
		if err := checkType(rt); err != nil {
			return nil, fhir.Invalid("resourceType", "unknown resourceType %q", trunc(rt))
		}
	} else if err := checkResourceType(typ, res, typ); err != nil {
		return nil, err
	}
	warnings, err := validate.Resource(res, validate.Options{Lenient: o.Lenient || e.cfg.Lenient})
	if err != nil {
		var issues []fhir.Issue
		if fe, ok := err.(*fhir.Error); ok && fe.Kind != fhir.EInternal {
			issues = append(issues, fe.Issues...)
		} else {
			return nil, err
		}
		return fhir.OutcomeOf(append(issues, warnings...)...), nil
	}
	if len(warnings) > 0 {
		return fhir.OutcomeOf(warnings...), nil
	}
	return fhir.OutcomeOf(fhir.Issue{Severity: fhir.SeverityInformation, Code: "informational", Diagnostics: "the resource is valid"}), nil
}

// operations lists the operations of a resource type: the engine's own and
// those Config.Operations adds.
func (e *Engine) operations(typ string) []any {
	ops := []any{fhir.Object{
		"name":       "validate",
		"definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate",
	}}
	if typ == "Patient" {
		ops = append(ops, fhir.Object{
			"name":       "everything",
			"definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything",
		})
	}
	for _, op := range e.cfg.Operations[typ] {
		ops = append(ops, fhir.Object{"name": op.Name, "definition": op.Definition})
	}
	return ops
}
