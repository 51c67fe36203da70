package snapshot_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"cairn/internal/repo"
	"cairn/internal/snapshot"
)

// snap is one snapshot of a test list, named sNN by its place in the list.
type snap struct {
	at   string // "2006-01-02 15:04" UTC
	tags []string
}

// entries makes entries from snaps: the n-th (from 1) is named "sNN" and has an
// id that starts with byte n, so that of two equal times the later one in the
// list has the greater id and counts as newer.
func entries(t testing.TB, host string, paths []string, snaps []snap) ([]snapshot.Entry, map[repo.ID]string) {
	t.Helper()
	names := make(map[repo.ID]string)
	var list []snapshot.Entry
	for i, s := range snaps {
		at, err := time.Parse("2006-01-02 15:04", s.at)
		if err != nil {
			t.Fatal(err)
		}
		var id repo.ID
		id[0] = byte(i + 1)
		copy(id[1:], host)
		names[id] = fmt.Sprintf("s%02d", i+1)
		list = append(list, snapshot.Entry{ID: id, Snapshot: &repo.Snapshot{
			Time: at, Kind: repo.KindFile, Host: host, Paths: paths, Tags: s.tags,
		}})
	}
	return list, names
}

// render prints what Apply kept, newest first, one "sNN: reason, reason" a line.
func render(keep []snapshot.Entry, reasons map[repo.ID][]string, names map[repo.ID]string) string {
	var b strings.Builder
	for _, e := range keep {
		fmt.Fprintf(&b, "%s: %s\n", names[e.ID], strings.Join(reasons[e.ID], ", "))
	}
	return b.String()
}

// trim removes the indentation of a want block.
func trim(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// history is 40 snapshots of one machine over two years at irregular times:
// sparse at first, daily in the last weeks, with two in one hour (s37, s38),
// two at the same time (s31, s32), a year's end whose ISO week belongs to the
// next year (s07, s08) and a Monday that starts ISO week 1 of 2026 (s18).
var history = []snap{
	{at: "2024-03-15 09:00"},                                 // s01 Fri, the oldest
	{at: "2024-05-02 22:10"},                                 // s02
	{at: "2024-07-19 03:45", tags: []string{"keep"}},         // s03
	{at: "2024-09-30 23:59"},                                 // s04 Mon, 2024-W40
	{at: "2024-10-01 00:01"},                                 // s05 Tue, 2024-W40
	{at: "2024-12-24 18:00", tags: []string{"xmas"}},         // s06
	{at: "2024-12-31 23:00"},                                 // s07 Tue, 2025-W01
	{at: "2025-01-01 01:00"},                                 // s08 Wed, 2025-W01
	{at: "2025-02-14 12:00"},                                 // s09
	{at: "2025-04-30 08:00", tags: []string{"keep"}},         // s10
	{at: "2025-06-15 10:00"},                                 // s11
	{at: "2025-08-01 07:30"},                                 // s12
	{at: "2025-09-10 12:00"},                                 // s13
	{at: "2025-10-05 19:00"},                                 // s14
	{at: "2025-11-11 11:11"},                                 // s15
	{at: "2025-12-01 06:00"},                                 // s16
	{at: "2025-12-28 20:00", tags: []string{"xmas"}},         // s17 Sun, 2025-W52
	{at: "2025-12-29 09:00"},                                 // s18 Mon, 2026-W01
	{at: "2026-01-01 10:00"},                                 // s19 Thu, 2026-W01
	{at: "2026-01-15 10:00"},                                 // s20
	{at: "2026-02-01 10:00"},                                 // s21
	{at: "2026-02-09 10:00"},                                 // s22 Mon, W07
	{at: "2026-02-14 10:00"},                                 // s23 Sat, W07
	{at: "2026-02-20 10:00"},                                 // s24 Fri, W08
	{at: "2026-02-23 10:00"},                                 // s25 Mon, W09
	{at: "2026-02-26 10:00", tags: []string{"keep", "xmas"}}, // s26 Thu, W09
	{at: "2026-03-01 10:00"},                                 // s27 Sun, W09
	{at: "2026-03-02 08:00"},                                 // s28 Mon, W10
	{at: "2026-03-02 20:00"},                                 // s29 Mon, W10
	{at: "2026-03-03 10:00"},                                 // s30
	{at: "2026-03-04 09:00"},                                 // s31 same time as s32
	{at: "2026-03-04 09:00"},                                 // s32
	{at: "2026-03-05 12:00"},                                 // s33
	{at: "2026-03-06 23:30"},                                 // s34
	{at: "2026-03-07 00:30"},                                 // s35
	{at: "2026-03-08 14:00"},                                 // s36 Sun, W10
	{at: "2026-03-09 08:15"},                                 // s37 Mon, W11
	{at: "2026-03-09 08:45"},                                 // s38 same hour as s37
	{at: "2026-03-09 17:00"},                                 // s39
	{at: "2026-03-10 06:00"},                                 // s40 Tue, W11, the newest
}

// now is the fixed clock of the tests: after every snapshot of history.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func TestApplyPolicies(t *testing.T) {
	list, names := entries(t, "alpha", []string{"/home"}, history)
	for _, tc := range []struct {
		name string
		p    snapshot.Policy
		want string
	}{
		{"last 3", snapshot.Policy{Last: 3}, `
			s40: last snapshot
			s39: last snapshot
			s38: last snapshot`},
		{"hourly 3", snapshot.Policy{Hourly: 3}, `
			s40: hourly snapshot
			s39: hourly snapshot
			s38: hourly snapshot`},
		{"daily 7", snapshot.Policy{Daily: 7}, `
			s40: daily snapshot
			s39: daily snapshot
			s36: daily snapshot
			s35: daily snapshot
			s34: daily snapshot
			s33: daily snapshot
			s32: daily snapshot`},
		{"weekly 4", snapshot.Policy{Weekly: 4}, `
			s40: weekly snapshot
			s36: weekly snapshot
			s27: weekly snapshot
			s24: weekly snapshot`},
		{"monthly 12", snapshot.Policy{Monthly: 12}, `
			s40: monthly snapshot
			s26: monthly snapshot
			s20: monthly snapshot
			s18: monthly snapshot
			s15: monthly snapshot
			s14: monthly snapshot
			s13: monthly snapshot
			s12: monthly snapshot
			s11: monthly snapshot
			s10: monthly snapshot
			s09: monthly snapshot
			s08: monthly snapshot`},
		{"yearly 2", snapshot.Policy{Yearly: 2}, `
			s40: yearly snapshot
			s18: yearly snapshot`},
		// Three years exist, but only two are asked for: the oldest is not kept.
		{"yearly 3 keeps every year", snapshot.Policy{Yearly: 3}, `
			s40: yearly snapshot
			s18: yearly snapshot
			s07: yearly snapshot`},
		// More years asked for than exist: the oldest snapshot is kept as well.
		{"yearly 5 keeps the oldest", snapshot.Policy{Yearly: 5}, `
			s40: yearly snapshot
			s18: yearly snapshot
			s07: yearly snapshot
			s01: oldest yearly snapshot`},
		{"last 2, daily 3, weekly 3", snapshot.Policy{Last: 2, Daily: 3, Weekly: 3}, `
			s40: last snapshot, daily snapshot, weekly snapshot
			s39: last snapshot, daily snapshot
			s36: daily snapshot, weekly snapshot
			s27: weekly snapshot`},
		{"daily 7, weekly 4, monthly 12, yearly 2", snapshot.Policy{Daily: 7, Weekly: 4, Monthly: 12, Yearly: 2}, `
			s40: daily snapshot, weekly snapshot, monthly snapshot, yearly snapshot
			s39: daily snapshot
			s36: daily snapshot, weekly snapshot
			s35: daily snapshot
			s34: daily snapshot
			s33: daily snapshot
			s32: daily snapshot
			s27: weekly snapshot
			s26: monthly snapshot
			s24: weekly snapshot
			s20: monthly snapshot
			s18: monthly snapshot, yearly snapshot
			s15: monthly snapshot
			s14: monthly snapshot
			s13: monthly snapshot
			s12: monthly snapshot
			s11: monthly snapshot
			s10: monthly snapshot
			s09: monthly snapshot
			s08: monthly snapshot`},
		// 2024-12-31 is in ISO week 1 of 2025: one week with s08, two years.
		{"weekly and yearly across a year's end", snapshot.Policy{Weekly: 30, Yearly: 3}, `
			s40: weekly snapshot, yearly snapshot
			s36: weekly snapshot
			s27: weekly snapshot
			s24: weekly snapshot
			s23: weekly snapshot
			s21: weekly snapshot
			s20: weekly snapshot
			s19: weekly snapshot
			s18: yearly snapshot
			s17: weekly snapshot
			s16: weekly snapshot
			s15: weekly snapshot
			s14: weekly snapshot
			s13: weekly snapshot
			s12: weekly snapshot
			s11: weekly snapshot
			s10: weekly snapshot
			s09: weekly snapshot
			s08: weekly snapshot
			s07: yearly snapshot
			s06: weekly snapshot
			s05: weekly snapshot
			s03: weekly snapshot
			s02: weekly snapshot
			s01: weekly snapshot`},
		{"within 3 days", snapshot.Policy{Within: 72 * time.Hour}, `
			s40: within 3d
			s39: within 3d
			s38: within 3d
			s37: within 3d
			s36: within 3d`},
		{"within 3 days and last 1", snapshot.Policy{Within: 72 * time.Hour, Last: 1}, `
			s40: within 3d, last snapshot
			s39: within 3d
			s38: within 3d
			s37: within 3d
			s36: within 3d`},
		{"tag keep", snapshot.Policy{Tags: [][]string{{"keep"}}}, `
			s26: has tags [keep]
			s10: has tags [keep]
			s03: has tags [keep]`},
		{"tags keep and xmas together", snapshot.Policy{Tags: [][]string{{"keep", "xmas"}}}, `
			s26: has tags [keep xmas]`},
		{"tags keep or xmas", snapshot.Policy{Tags: [][]string{{"keep"}, {"xmas"}}}, `
			s26: has tags [keep], has tags [xmas]
			s17: has tags [xmas]
			s10: has tags [keep]
			s06: has tags [xmas]
			s03: has tags [keep]`},
		{"tag xmas and last 2", snapshot.Policy{Tags: [][]string{{"xmas"}}, Last: 2}, `
			s40: last snapshot
			s39: last snapshot
			s26: has tags [xmas]
			s17: has tags [xmas]
			s06: has tags [xmas]`},
		{"monthly all", snapshot.Policy{Monthly: -1}, `
			s40: monthly snapshot
			s26: monthly snapshot
			s20: monthly snapshot
			s18: monthly snapshot
			s15: monthly snapshot
			s14: monthly snapshot
			s13: monthly snapshot
			s12: monthly snapshot
			s11: monthly snapshot
			s10: monthly snapshot
			s09: monthly snapshot
			s08: monthly snapshot
			s07: monthly snapshot
			s05: monthly snapshot
			s04: monthly snapshot
			s03: monthly snapshot
			s02: monthly snapshot
			s01: monthly snapshot`},
		{"yearly all, last 1", snapshot.Policy{Yearly: -1, Last: 1}, `
			s40: last snapshot, yearly snapshot
			s18: yearly snapshot
			s07: yearly snapshot
			s01: oldest yearly snapshot`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keep, remove, reasons := snapshot.Apply(list, tc.p, now)
			if got, want := render(keep, reasons, names), trim(tc.want); got != want {
				t.Errorf("policy %v kept:\n%s\nwant:\n%s", tc.p, got, want)
			}
			checkPartition(t, list, keep, remove, reasons)
		})
	}
}

// checkPartition checks that keep and remove split list, newest first, and
// that exactly the kept ones have reasons.
func checkPartition(t testing.TB, list, keep, remove []snapshot.Entry, reasons map[repo.ID][]string) {
	t.Helper()
	if len(keep)+len(remove) != len(list) {
		t.Fatalf("%d kept + %d removed != %d", len(keep), len(remove), len(list))
	}
	in := make(map[repo.ID]int)
	for _, e := range list {
		in[e.ID]++
	}
	for _, part := range [][]snapshot.Entry{keep, remove} {
		for i, e := range part {
			in[e.ID]--
			if i > 0 && part[i-1].Time.Before(e.Time) {
				t.Errorf("not newest first: %v before %v", part[i-1].Time, e.Time)
			}
		}
	}
	for id, n := range in {
		if n != 0 {
			t.Errorf("%v is %d times more in the input than in keep and remove", id.Short(), n)
		}
	}
	if len(reasons) != len(keep) {
		t.Errorf("%d reasons for %d kept", len(reasons), len(keep))
	}
	for _, e := range keep {
		if len(reasons[e.ID]) == 0 {
			t.Errorf("%v kept without a reason", e.ID.Short())
		}
	}
}

func TestApplyKeepsEverything(t *testing.T) {
	list, _ := entries(t, "alpha", []string{"/home"}, history)
	for _, p := range []snapshot.Policy{
		{}, // empty: forget refuses it, but Apply keeps all
		{Last: -1},
		{Daily: -1, Last: 40},
		{Within: 3 * 365 * 24 * time.Hour},
		{Tags: [][]string{{}}},  // an empty group matches every snapshot
		{Location: time.UTC},    // a zone is no rule
		{Within: -time.Hour},    // invalid: no rule
		{Hourly: -1, Weekly: 1}, // all but s31 and s37, which share an hour with s32 and s38
		{Last: 100, Yearly: 1},  // more than there are
		{Tags: [][]string{{"", "x"}}, Last: -1},
	} {
		keep, remove, reasons := snapshot.Apply(list, p, now)
		if p.Hourly == -1 {
			// s31 (same hour as s32) and s37 (same hour as s38) go.
			if len(remove) != 2 {
				t.Errorf("%v: removed %d, want s31 and s37", p, len(remove))
			}
			continue
		}
		if len(remove) != 0 || len(keep) != len(list) {
			t.Errorf("%v: kept %d, removed %d of %d", p, len(keep), len(remove), len(list))
		}
		checkPartition(t, list, keep, remove, reasons)
		if p.Empty() && !slices.Equal(reasons[list[0].ID], []string{"policy is empty"}) {
			t.Errorf("%v: reasons %q", p, reasons[list[0].ID])
		}
	}
}

func TestApplyEmptyList(t *testing.T) {
	for _, p := range []snapshot.Policy{{}, {Last: 3}, {Within: time.Hour, Tags: [][]string{{"a"}}}, {Yearly: -1}} {
		keep, remove, reasons := snapshot.Apply(nil, p, now)
		if len(keep) != 0 || len(remove) != 0 || len(reasons) != 0 {
			t.Errorf("%v on no snapshots: %v %v %v", p, keep, remove, reasons)
		}
	}
}

// Equal times are ordered by id whatever the order of the input, so the same
// one is kept each time; and the input is not reordered.
func TestApplyIdenticalTimes(t *testing.T) {
	snaps := []snap{
		{at: "2026-03-01 10:00"}, {at: "2026-03-04 09:00"}, {at: "2026-03-04 09:00"},
		{at: "2026-03-04 09:00"}, {at: "2026-03-05 09:00"}, {at: "2026-03-05 09:00"},
	}
	list, names := entries(t, "alpha", []string{"/home"}, snaps)
	want := trim(`
		s06: last snapshot, daily snapshot
		s05: last snapshot
		s04: daily snapshot
		s01: daily snapshot`)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(list)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		before := slices.Clone(shuffled)
		keep, remove, reasons := snapshot.Apply(shuffled, snapshot.Policy{Last: 2, Daily: 5}, now)
		if got := render(keep, reasons, names); got != want {
			t.Fatalf("kept:\n%s\nwant:\n%s", got, want)
		}
		checkPartition(t, list, keep, remove, reasons)
		if !slices.EqualFunc(before, shuffled, func(a, b snapshot.Entry) bool { return a.ID == b.ID }) {
			t.Fatal("Apply reordered its input")
		}
	}
}

// Periods begin in Policy.Location, or without one in each snapshot's own
// recorded zone.
func TestApplyTimeZone(t *testing.T) {
	// 12:00, 23:30 and 00:30 UTC: three in two days in UTC; at +02 (14:00,
	// 01:30, 02:30) the last two share 03-07; at -05 (07:00, 18:30, 19:30)
	// all three share 03-06.
	snaps := []snap{{at: "2026-03-06 12:00"}, {at: "2026-03-06 23:30"}, {at: "2026-03-07 00:30"}}
	plus2 := time.FixedZone("+02", 2*3600)
	minus5 := time.FixedZone("-05", -5*3600)
	for _, tc := range []struct {
		name     string
		recorded *time.Location // the zone the snapshot times are recorded in
		location *time.Location // Policy.Location
		want     string
	}{
		{"UTC", time.UTC, nil, `
			s03: daily snapshot
			s02: daily snapshot
			s01: oldest daily snapshot`},
		{"+02 given", time.UTC, plus2, `
			s03: daily snapshot
			s01: daily snapshot`},
		{"-05 given", time.UTC, minus5, `
			s03: daily snapshot
			s01: oldest daily snapshot`},
		{"-05 recorded", minus5, nil, `
			s03: daily snapshot
			s01: oldest daily snapshot`},
		{"-05 recorded, UTC given", minus5, time.UTC, `
			s03: daily snapshot
			s02: daily snapshot
			s01: oldest daily snapshot`},
	} {
		list, names := entries(t, "alpha", nil, snaps)
		for _, e := range list {
			e.Time = e.Time.In(tc.recorded)
		}
		keep, _, reasons := snapshot.Apply(list, snapshot.Policy{Daily: -1, Location: tc.location}, now)
		if got, want := render(keep, reasons, names), trim(tc.want); got != want {
			t.Errorf("%s: kept:\n%s\nwant:\n%s", tc.name, got, want)
		}
	}
}

// Within counts back from the newest snapshot that is not in the future, not
// from now: a machine that stopped backing up keeps its last days.
func TestApplyWithinIsRelativeToNewest(t *testing.T) {
	list, names := entries(t, "alpha", nil, []snap{
		{at: "2025-06-01 10:00"}, {at: "2025-06-02 10:00"}, {at: "2025-06-03 09:00"},
		{at: "2025-06-04 10:00"}, {at: "2026-12-31 10:00"}, // s05 dated in the future
	})
	keep, _, reasons := snapshot.Apply(list, snapshot.Policy{Within: 49 * time.Hour}, now)
	// The newest not in the future is s04: s02 is 48h before it, s01 72h.
	want := trim(`
		s05: within 2d1h
		s04: within 2d1h
		s03: within 2d1h
		s02: within 2d1h`)
	if got := render(keep, reasons, names); got != want {
		t.Errorf("kept:\n%s\nwant:\n%s", got, want)
	}
	// Exactly Within before the newest is not "within": restic's After.
	keep, _, _ = snapshot.Apply(list, snapshot.Policy{Within: 48 * time.Hour}, now)
	if len(keep) != 3 {
		t.Errorf("within 48h kept %d, want s05, s04, s03", len(keep))
	}
}

func TestGroup(t *testing.T) {
	mk := func(n byte, kind, host string, paths, tags []string, at string) snapshot.Entry {
		ts, err := time.Parse("2006-01-02", at)
		if err != nil {
			t.Fatal(err)
		}
		return snapshot.Entry{ID: repo.ID{n}, Snapshot: &repo.Snapshot{Time: ts, Kind: kind, Host: host, Paths: paths, Tags: tags}}
	}
	list := []snapshot.Entry{
		mk(1, repo.KindFile, "beta", []string{"/home"}, nil, "2026-01-01"),
		mk(2, repo.KindFile, "alpha", []string{"/home", "/etc"}, []string{"b", "a"}, "2026-01-02"),
		mk(3, repo.KindFile, "alpha", []string{"/home"}, nil, "2026-01-03"),
		mk(4, repo.KindFile, "alpha", []string{"/etc", "/home"}, []string{"a"}, "2026-01-04"),
		mk(5, repo.KindImage, "alpha", []string{"/home"}, nil, "2026-01-05"),
		mk(6, repo.KindFile, "alpha", []string{"/home"}, nil, "2026-01-06"),
		mk(7, repo.KindImage, "alpha", []string{"/dev/sda"}, nil, "2026-01-07"),
		mk(8, repo.KindFile, "beta", []string{"/home"}, nil, "2026-01-08"),
	}
	render := func(groups []snapshot.EntryGroup) string {
		var b strings.Builder
		for _, g := range groups {
			fmt.Fprintf(&b, "%s:", g.Key)
			for _, e := range g.Entries {
				fmt.Fprintf(&b, " %d", e.ID[0])
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		by   string
		want string
	}{
		{snapshot.DefaultGroupBy, `
			host alpha, paths [/etc /home]: 2 4
			host alpha, paths [/home]: 3 6
			host beta, paths [/home]: 1 8
			kind image, host alpha, paths [/dev/sda]: 7
			kind image, host alpha, paths [/home]: 5`},
		{"host", `
			host alpha: 2 3 4 6
			host beta: 1 8
			kind image, host alpha: 5 7`},
		{"", `
			kind file: 1 2 3 4 6 8
			kind image: 5 7`},
		{"paths,tags", `
			paths [/etc /home], tags [a]: 4
			paths [/etc /home], tags [a b]: 2
			paths [/home], tags []: 1 3 6 8
			kind image, paths [/dev/sda], tags []: 7
			kind image, paths [/home], tags []: 5`},
		{"hosts,path,tag", `
			host alpha, paths [/etc /home], tags [a]: 4
			host alpha, paths [/etc /home], tags [a b]: 2
			host alpha, paths [/home], tags []: 3 6
			host beta, paths [/home], tags []: 1 8
			kind image, host alpha, paths [/dev/sda], tags []: 7
			kind image, host alpha, paths [/home], tags []: 5`},
	} {
		by, err := snapshot.ParseGroupBy(tc.by)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := render(snapshot.Group(list, by)), trim(tc.want); got != want {
			t.Errorf("group by %q:\n%s\nwant:\n%s", tc.by, got, want)
		}
	}
	if !slices.Equal(list[1].Paths, []string{"/home", "/etc"}) || !slices.Equal(list[1].Tags, []string{"b", "a"}) {
		t.Error("Group sorted a snapshot's paths or tags in place")
	}
	if _, err := snapshot.ParseGroupBy("host,time"); err == nil {
		t.Error("ParseGroupBy accepted an unknown field")
	}
	if by, _ := snapshot.ParseGroupBy(snapshot.DefaultGroupBy); by != (snapshot.GroupBy{Host: true, Paths: true}) || by.String() != "host,paths" {
		t.Errorf("default group by: %+v %q", by, by)
	}

	// Each group is its own history: Last 1 keeps the newest of each, and a
	// group's newest hides nothing of another's.
	by, _ := snapshot.ParseGroupBy(snapshot.DefaultGroupBy)
	var kept []byte
	for _, g := range snapshot.Group(list, by) {
		keep, _, _ := snapshot.Apply(g.Entries, snapshot.Policy{Last: 1, Daily: 1}, now)
		for _, e := range keep {
			kept = append(kept, e.ID[0])
		}
	}
	if want := []byte{4, 6, 8, 7, 5}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
}

// Two machines backing up the same paths with a policy applied per group:
// each machine keeps its own last, daily and weekly snapshots.
func TestApplyGroupsAreIndependent(t *testing.T) {
	alpha, names := entries(t, "alpha", []string{"/home"}, history)
	beta, betaNames := entries(t, "beta", []string{"/home"}, history[:20]) // stopped in January
	for id, n := range betaNames {
		names[id] = "beta " + n
	}
	all := append(slices.Clone(beta), alpha...)
	var got strings.Builder
	for _, g := range snapshot.Group(all, snapshot.GroupBy{Host: true, Paths: true}) {
		keep, remove, reasons := snapshot.Apply(g.Entries, snapshot.Policy{Last: 1, Weekly: 2, Within: 24 * time.Hour}, now)
		checkPartition(t, g.Entries, keep, remove, reasons)
		fmt.Fprintf(&got, "%s\n%s", g.Key, render(keep, reasons, names))
	}
	want := trim(`
		host alpha, paths [/home]
		s40: within 1d, last snapshot, weekly snapshot
		s39: within 1d
		s38: within 1d
		s37: within 1d
		s36: weekly snapshot
		host beta, paths [/home]
		beta s20: within 1d, last snapshot, weekly snapshot
		beta s19: weekly snapshot`)
	if got.String() != want {
		t.Errorf("kept:\n%s\nwant:\n%s", got.String(), want)
	}
}

func TestPolicyStringEmptyValidate(t *testing.T) {
	for _, tc := range []struct {
		p     snapshot.Policy
		empty bool
		str   string
	}{
		{snapshot.Policy{}, true, "empty policy (keep everything)"},
		{snapshot.Policy{Tags: [][]string{}, Location: time.UTC}, true, "empty policy (keep everything)"},
		{snapshot.Policy{Last: 3}, false, "keep 3 latest snapshots"},
		{snapshot.Policy{Last: 3, Daily: 7, Monthly: -1}, false, "keep 3 latest, 7 daily, all monthly snapshots"},
		{snapshot.Policy{Weekly: 4, Tags: [][]string{{"a", "b"}, {"c"}}, Within: 36 * time.Hour}, false,
			"keep 4 weekly snapshots and all snapshots with tags [a b] or [c] and all snapshots within 1d12h of the newest"},
		{snapshot.Policy{Hourly: 1, Yearly: 2, Within: 90 * time.Minute}, false,
			"keep 1 hourly, 2 yearly snapshots and all snapshots within 1h30m0s of the newest"},
	} {
		if tc.p.Empty() != tc.empty || tc.p.String() != tc.str {
			t.Errorf("%#v: Empty %v, String %q; want %v, %q", tc.p, tc.p.Empty(), tc.p.String(), tc.empty, tc.str)
		}
		if err := tc.p.Validate(); err != nil {
			t.Errorf("%v: %v", tc.p, err)
		}
	}
	err := snapshot.Policy{Daily: -2, Yearly: -3, Within: -time.Hour}.Validate()
	if err == nil || !strings.Contains(err.Error(), "keep-daily -2") || !strings.Contains(err.Error(), "keep-yearly -3") ||
		!strings.Contains(err.Error(), "keep-within") {
		t.Errorf("Validate: %v", err)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		72 * time.Hour:       "3d",
		36 * time.Hour:       "1d12h",
		5 * time.Hour:        "5h",
		90 * time.Minute:     "1h30m0s",
		365 * 24 * time.Hour: "365d",
	} {
		if got := snapshot.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

// FuzzApply decodes snapshots of three machines at random times (6 bytes each:
// seconds into a three-year span, a host and tag bits) and a random policy,
// then checks what holds for every input.
func FuzzApply(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x01\x00\x00\x00\x00\x10\x00\x01\x01\x00\x00\x00\x01\x00\x02"), int8(2), int8(0), int8(3), int8(1), int8(-1), int8(0), uint16(0), uint8(0))
	f.Add([]byte("seventeen bytes of snapshot data and more and more and more"), int8(0), int8(1), int8(0), int8(2), int8(0), int8(1), uint16(50), uint8(3))
	f.Add([]byte{}, int8(1), int8(1), int8(1), int8(1), int8(1), int8(1), uint16(1), uint8(1))
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	zones := []*time.Location{nil, time.UTC, time.FixedZone("+0530", 5*3600+1800), time.FixedZone("-08", -8*3600)}
	f.Fuzz(func(t *testing.T, data []byte, last, hourly, daily, weekly, monthly, yearly int8, withinHours uint16, flags uint8) {
		count := func(v int8) int { return max(int(v)%8, -1) }
		p := snapshot.Policy{
			Last: count(last), Hourly: count(hourly), Daily: count(daily),
			Weekly: count(weekly), Monthly: count(monthly), Yearly: count(yearly),
			Within:   time.Duration(withinHours%2000) * time.Hour,
			Location: zones[flags%4],
		}
		if flags&4 != 0 {
			p.Tags = [][]string{{"a"}}
		}
		if flags&8 != 0 {
			p.Tags = append(p.Tags, []string{"a", "b"})
		}
		var list []snapshot.Entry
		for i := 0; len(data) >= 6 && i < 300; i++ {
			sec := binary.BigEndian.Uint32(data) % (3 * 366 * 86400)
			var id repo.ID
			binary.BigEndian.PutUint32(id[:], uint32(i))
			s := &repo.Snapshot{
				Time: base.Add(time.Duration(sec) * time.Second), Kind: repo.KindFile,
				Host: []string{"alpha", "beta", "gamma"}[data[4]%3], Paths: []string{"/home"},
			}
			if data[4]&0x80 != 0 {
				s.Kind = repo.KindImage
			}
			if data[5]&1 != 0 {
				s.Tags = append(s.Tags, "a")
			}
			if data[5]&2 != 0 {
				s.Tags = append(s.Tags, "b")
			}
			list = append(list, snapshot.Entry{ID: id, Snapshot: s})
			data = data[6:]
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%v: %v", p, err)
		}
		now := base.Add(2 * 366 * 24 * time.Hour) // some snapshots are in the future

		groups := snapshot.Group(list, snapshot.GroupBy{Host: true, Paths: true})
		total := 0
		for _, g := range groups {
			total += len(g.Entries)
			keep, remove, reasons := snapshot.Apply(g.Entries, p, now)
			checkPartition(t, g.Entries, keep, remove, reasons)
			kept := make(map[repo.ID]bool)
			for _, e := range keep {
				kept[e.ID] = true
			}

			sorted := slices.Clone(g.Entries)
			slices.SortFunc(sorted, func(a, b snapshot.Entry) int {
				if c := b.Time.Compare(a.Time); c != 0 {
					return c
				}
				return strings.Compare(b.ID.String(), a.ID.String())
			})
			// Last n keeps the n newest, and only them by that reason.
			n := p.Last
			if n < 0 || n > len(sorted) {
				n = len(sorted)
			}
			for i, e := range sorted {
				byLast := slices.Contains(reasons[e.ID], "last snapshot")
				if byLast != (i < n) {
					t.Errorf("Last %d: snapshot %d of %d (newest first) has reasons %q", p.Last, i, len(sorted), reasons[e.ID])
				}
			}
			// A counted rule keeps at most its count; no tag or within rule:
			// at most the sum of the counts.
			sum, unlimited, counted := 0, false, false
			for _, c := range []struct {
				n      int
				reason string
			}{{p.Last, "last snapshot"}, {p.Hourly, "hourly snapshot"}, {p.Daily, "daily snapshot"},
				{p.Weekly, "weekly snapshot"}, {p.Monthly, "monthly snapshot"}, {p.Yearly, "yearly snapshot"}} {
				sum += c.n
				unlimited = unlimited || c.n < 0
				counted = counted || c.n != 0
				used := 0
				for _, why := range reasons {
					for _, r := range why {
						if r == c.reason || r == "oldest "+c.reason {
							used++
						}
					}
				}
				if c.n >= 0 && used > c.n {
					t.Errorf("%q used %d times, count %d", c.reason, used, c.n)
				}
			}
			if !p.Empty() && len(p.Tags) == 0 && p.Within == 0 && !unlimited && len(keep) > sum {
				t.Errorf("kept %d > %d", len(keep), sum)
			}
			// Those with all tags of one group are kept.
			for _, e := range g.Entries {
				for _, tags := range p.Tags {
					if !slices.ContainsFunc(tags, func(tag string) bool { return !slices.Contains(e.Tags, tag) }) && !kept[e.ID] {
						t.Errorf("%v with tags %v removed", e.ID.Short(), e.Tags)
					}
				}
			}
			if p.Empty() && len(remove) > 0 {
				t.Error("an empty policy removed snapshots")
			}
			// The newest snapshot is kept by any count rule.
			if len(sorted) > 0 && counted && !kept[sorted[0].ID] {
				t.Errorf("newest removed under %v", p)
			}
			// Apply on a reordered copy decides the same.
			rev := slices.Clone(g.Entries)
			slices.Reverse(rev)
			keep2, _, reasons2 := snapshot.Apply(rev, p, now)
			if !slices.EqualFunc(keep, keep2, func(a, b snapshot.Entry) bool {
				return a.ID == b.ID && slices.Equal(reasons[a.ID], reasons2[b.ID])
			}) {
				t.Error("the input order changed the result")
			}
		}
		if total != len(list) {
			t.Errorf("groups hold %d of %d snapshots", total, len(list))
		}
	})
}
