// Package taxonomy holds the producer's school taxonomy, taxonomy.yaml, as
// data compiled into every binary that imports it: the enricher classifies
// with the file of its own build, so what a deployed function uses is what
// its source archive held, with no path to resolve at run time. shared/taxonomy
// parses and checks it (taxonomy.Default).
package taxonomy

import _ "embed"

// YAML is taxonomy.yaml as it was when the binary was built.
//
//go:embed taxonomy.yaml
var YAML []byte
