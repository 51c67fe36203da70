// Package cli builds cairn's commands: one file per command, each with its options
// and a run function that calls an engine. Output goes through ui.Printer only.
package cli
