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

// List loads every snapshot that passes f, oldest first. Snapshot files that are
// damaged (see ListAll) are left out; a failure to read one is an error.
func List(ctx context.Context, r *repo.Repository, f Filter) ([]Entry, error) {
	list, _, err := ListAll(ctx, r, f)
	return list, err
}

// ListAll is List that also returns the snapshot files that are damaged or gone
// (repo.ErrDamaged), with why, so that one damaged snapshot does not hide the others;
// check reports them and 'repair snapshots --forget' removes them.
func ListAll(ctx context.Context, r *repo.Repository, f Filter) ([]Entry, map[repo.ID]error, error) {
	ids, err := r.SnapshotIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	entries := make([]Entry, len(ids))
	errs := make([]error, len(ids))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, id := range ids {
		g.Go(func() error {
			s, err := r.ReadSnapshot(gctx, id)
			if errors.Is(err, repo.ErrDamaged) {
				errs[i] = err
				return nil
			}
			if err != nil {
				return err
			}
			entries[i] = Entry{ID: id, Snapshot: s}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	damaged := map[repo.ID]error{}
	for i, err := range errs {
		if err != nil {
			damaged[ids[i]] = err
		}
	}
	out := entries[:0]
	for _, e := range entries {
		if e.Snapshot != nil && f.Match(e.Snapshot) {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.Before(out[j].Time)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out, damaged, nil
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
