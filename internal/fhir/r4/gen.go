package r4

// The tables in types_gen.go and searchparams_gen.go are generated from the
// trimmed definitions in defs/r4.json.gz; gen/main.go says how that extract
// is made from the official definitions.
//go:generate go run ./gen
