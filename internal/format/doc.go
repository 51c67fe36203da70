// Package format holds the codecs of every object in a cairn repository: key files,
// the config, pack headers, index files, snapshots and trees. It does no I/O and no
// encryption; the repository package seals what these codecs produce. Every decoder
// accepts arbitrary bytes and returns an error, never panics, on input it did not
// write. The layout is described in docs/format.md.
package format

// Version is the repository format version this code writes and reads.
const Version = 1
