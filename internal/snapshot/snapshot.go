// Package snapshot finds snapshots: by id prefix or "latest" with host, tag and path
// filters, and the parent a new backup builds on.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"cairn/internal/repo"
)

// Entry is a snapshot with its id.
type Entry struct {
	ID repo.ID
	*repo.Snapshot
}

// Filter selects snapshots; empty fields match everything.
type Filter struct {
	Hosts []string
	Tags  []string // a snapshot must carry every one
	Paths []string // a snapshot must have exactly these paths (in any order)
	Kind  string
}

// Match reports whether s passes the filter.
func (f Filter) Match(s *repo.Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, s.Host) {
		return false
	}
	for _, t := range f.Tags {
		if !slices.Contains(s.Tags, t) {
			return false
		}
	}
	if len(f.Paths) > 0 && !samePaths(f.Paths, s.Paths) {
		return false
	}
	return f.Kind == "" || f.Kind == s.Kind
}

func samePaths(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

// List loads every snapshot that passes f, oldest first.
func List(ctx context.Context, r *repo.Repository, f Filter) ([]Entry, error) {
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, err
	}
	entries := make([]Entry, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			s, err := r.LoadSnapshot(gctx, id)
			if err != nil {
				return err
			}
			entries[i] = Entry{ID: id, Snapshot: s}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		if f.Match(e.Snapshot) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, nil
}

// ErrNotFound is returned when no snapshot matches a name.
var ErrNotFound = errors.New("no matching snapshot")

// Find returns the snapshot named by name: a unique prefix of its id, or "latest",
// the newest that passes f.
func Find(ctx context.Context, r *repo.Repository, name string, f Filter) (Entry, error) {
	if name == "" {
		return Entry{}, errors.New("no snapshot named")
	}
	if name == "latest" {
		list, err := List(ctx, r, f)
		if err != nil {
			return Entry{}, err
		}
		if len(list) == 0 {
			return Entry{}, fmt.Errorf("latest: %w", ErrNotFound)
		}
		return list[len(list)-1], nil
	}
	for _, c := range name {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return Entry{}, fmt.Errorf("%q is not a snapshot id or 'latest'", name)
		}
	}
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return Entry{}, err
	}
	var match []repo.ID
	for _, id := range ids {
		if repo.HasPrefix(id, name) {
			match = append(match, id)
		}
	}
	switch len(match) {
	case 0:
		return Entry{}, fmt.Errorf("snapshot %s: %w", name, ErrNotFound)
	case 1:
	default:
		return Entry{}, fmt.Errorf("snapshot prefix %q is ambiguous: %d snapshots match", name, len(match))
	}
	s, err := r.LoadSnapshot(ctx, match[0])
	if err != nil {
		return Entry{}, err
	}
	return Entry{ID: match[0], Snapshot: s}, nil
}

// FindParent returns the newest snapshot of the same kind, host and paths, or
// ok=false when there is none.
func FindParent(ctx context.Context, r *repo.Repository, kind, host string, paths []string) (Entry, bool, error) {
	list, err := List(ctx, r, Filter{Hosts: []string{host}, Paths: paths, Kind: kind})
	if err != nil {
		return Entry{}, false, err
	}
	if len(list) == 0 {
		return Entry{}, false, nil
	}
	return list[len(list)-1], true, nil
}
