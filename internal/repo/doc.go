// Package repo is the repository engine: it keeps keys and config, turns blobs into
// sealed, compressed entries of pack files, keeps the index of where every blob is,
// and saves snapshots. Every engine (archiver, imager, restorer, checker) reaches the
// stored bytes only through it, and it alone uses the format codecs.
//
// Write order makes a crash safe at any point: a pack is stored before the index that
// names it, and an index before any snapshot that needs its blobs; nothing is changed
// in place.
package repo
