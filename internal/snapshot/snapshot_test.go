package snapshot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"cairn/internal/repo"
	"cairn/internal/repo/repotest"
	"cairn/internal/snapshot"
)

func save(t *testing.T, r *repo.Repository, host string, paths []string, tags []string, at time.Time) repo.ID {
	t.Helper()
	tree, _, err := r.SaveTree(context.Background(), &repo.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.SaveSnapshot(context.Background(), &repo.Snapshot{Time: at, Kind: repo.KindFile, Host: host, Paths: paths, Tags: tags, Tree: tree})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestFindAndFilters(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := save(t, r, "alpha", []string{"/home"}, []string{"daily"}, t0)
	b := save(t, r, "alpha", []string{"/home"}, nil, t0.Add(time.Hour))
	c := save(t, r, "beta", []string{"/etc", "/home"}, []string{"daily"}, t0.Add(2*time.Hour))

	list, err := snapshot.List(ctx, r, snapshot.Filter{})
	if err != nil || len(list) != 3 || list[0].ID != a || list[2].ID != c {
		t.Fatalf("List: %v %v", list, err)
	}
	for _, tc := range []struct {
		name string
		f    snapshot.Filter
		want repo.ID
	}{
		{"latest", snapshot.Filter{}, c},
		{"latest", snapshot.Filter{Hosts: []string{"alpha"}}, b},
		{"latest", snapshot.Filter{Tags: []string{"daily"}, Hosts: []string{"alpha"}}, a},
		{"latest", snapshot.Filter{Paths: []string{"/home", "/etc"}}, c},
		{b.String()[:10], snapshot.Filter{}, b},
		{strings.ToUpper(a.String()[:10]), snapshot.Filter{}, a},
	} {
		got, err := snapshot.Find(ctx, r, tc.name, tc.f)
		if err != nil || got.ID != tc.want {
			t.Errorf("Find(%q, %+v) = %v, %v; want %v", tc.name, tc.f, got.ID.Short(), err, tc.want.Short())
		}
	}
	if _, err := snapshot.Find(ctx, r, "latest", snapshot.Filter{Hosts: []string{"gamma"}}); !errors.Is(err, snapshot.ErrNotFound) {
		t.Errorf("latest of an unknown host: %v", err)
	}
	if _, err := snapshot.Find(ctx, r, "", snapshot.Filter{}); err == nil {
		t.Errorf("an empty name must be an error")
	}
	if _, err := snapshot.Find(ctx, r, "xyz", snapshot.Filter{}); err == nil {
		t.Errorf("a name that is no id prefix must be an error")
	}
	if _, err := snapshot.Find(ctx, r, "", snapshot.Filter{}); err == nil {
		t.Errorf("the empty prefix must be an error")
	}
	p, ok, err := snapshot.FindParent(ctx, r, repo.KindFile, "alpha", []string{"/home"})
	if err != nil || !ok || p.ID != b {
		t.Errorf("FindParent: %v %v %v", p.ID.Short(), ok, err)
	}
	if _, ok, _ := snapshot.FindParent(ctx, r, repo.KindFile, "alpha", []string{"/etc"}); ok {
		t.Errorf("FindParent with other paths found one")
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	ctx := context.Background()
	r := repotest.New(t)
	var ids []repo.ID
	for i := 0; i < 40; i++ {
		ids = append(ids, save(t, r, "h", []string{"/"}, nil, time.Unix(int64(i), 0)))
	}
	// With 40 ids, some two share their first hex digit.
	seen := map[byte]bool{}
	for _, id := range ids {
		c := id.String()[0]
		if seen[c] {
			_, err := snapshot.Find(ctx, r, string(c), snapshot.Filter{})
			if err == nil || !strings.Contains(err.Error(), "ambiguous") {
				t.Fatalf("prefix %q: %v", c, err)
			}
			return
		}
		seen[c] = true
	}
	t.Fatal("no shared prefix among 40 ids")
}
