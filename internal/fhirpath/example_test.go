package fhirpath_test

import (
	"fmt"

	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/fhir/r4"
	"github.com/sharedcare/sharedcare/internal/fhirpath"
)

// A search indexer compiles each parameter's expression once and, on every
// write, evaluates it and switches on the FHIR type of each node.
func Example_searchIndexing() {
	obs, _ := fhir.ParseObject([]byte(`{"resourceType":"Observation","status":"final",
	  "code":{"coding":[{"system":"http://loinc.org","code":"8867-4"}]},
	  "subject":{"reference":"Patient/p1"},
	  "effectivePeriod":{"start":"2024-01-02T10:00:00Z"},
	  "valueQuantity":{"value":72,"system":"http://unitsofmeasure.org","code":"/min"}}`), 100)

	for _, name := range []string{"date", "patient", "value-quantity"} {
		sp := r4.SearchParams("Observation")[name]
		expr := fhirpath.MustCompile(sp.Expression) // once, at start-up
		nodes, err := expr.Evaluate(obs)
		if err != nil {
			panic(err)
		}
		for _, n := range nodes {
			switch n.Type() {
			case "Period":
				fmt.Println(name, "period starting", n.JSON().(fhir.Object)["start"])
			case "Reference":
				fmt.Println(name, "reference to", n.JSON().(fhir.Object)["reference"])
			case "Quantity":
				fmt.Println(name, "quantity", n.JSON().(fhir.Object)["value"], n.JSON().(fhir.Object)["code"])
			}
		}
	}
	// Output:
	// date period starting 2024-01-02T10:00:00Z
	// patient reference to Patient/p1
	// value-quantity quantity 72 /min
}
