package snapshot

// The retention policy of "cairn forget": which snapshots of a group to keep.
// Pure logic, no I/O; the current time and the time zone are passed in.
// The rules are restic's (internal/restic/snapshot_policy.go, as of 0.17/0.18),
// so that a restic user's --keep-* flags mean the same here.

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"cairn/internal/repo"
)

// Policy says which snapshots of one group to keep. A count of 0 turns its rule
// off; a count of -1 means unlimited ("keep all"). Counts below -1 are invalid
// (Validate reports them).
type Policy struct {
	Last    int // keep the n newest snapshots
	Hourly  int // keep the newest snapshot of each of the n newest hours that have one
	Daily   int // ... of each of the n newest days
	Weekly  int // ... of each of the n newest ISO 8601 weeks (Monday to Sunday)
	Monthly int // ... of each of the n newest months
	Yearly  int // ... of each of the n newest years

	// Within keeps every snapshot newer than Within before the newest snapshot
	// of the group dated before now (restic's rule: relative to that
	// snapshot, not to the current time, so that a machine that stopped backing
	// up keeps its last Within of history). 0 turns it off.
	Within time.Duration

	// Tags keeps every snapshot that carries all tags of at least one group
	// (restic's --keep-tag a,b --keep-tag c is [][]string{{"a", "b"}, {"c"}}).
	// An empty tag "" in a group matches a snapshot without tags.
	Tags [][]string

	// Location is the time zone in which hours, days, weeks, months and years
	// begin: the CLI passes time.Local. nil uses each snapshot's time as
	// recorded, in the zone offset of the machine that made it (what restic
	// does). Location is not a rule: it does not make a policy non-empty.
	Location *time.Location
}

// Empty reports whether p has no rule, so that it would keep everything.
// forget refuses an empty policy as bad usage. A negative Within (invalid) is
// no rule.
func (p Policy) Empty() bool {
	return p.Last == 0 && p.Hourly == 0 && p.Daily == 0 && p.Weekly == 0 &&
		p.Monthly == 0 && p.Yearly == 0 && p.Within <= 0 && len(p.Tags) == 0
}

// Validate returns an error for a count below -1 or a negative Within.
func (p Policy) Validate() error {
	var errs []error
	for _, b := range p.buckets() {
		if b.count < -1 {
			errs = append(errs, fmt.Errorf("keep-%s %d: a count is -1 (all), 0 (off) or more", b.flag, b.count))
		}
	}
	if p.Within < 0 {
		errs = append(errs, fmt.Errorf("keep-within %v: a duration is not negative", p.Within))
	}
	return errors.Join(errs...)
}

// String describes p for messages, e.g. "keep 3 latest, 7 daily, all monthly
// snapshots and all snapshots with tags [important] and all snapshots within
// 3d of the newest".
func (p Policy) String() string {
	if p.Empty() {
		return "empty policy (keep everything)"
	}
	var parts, counts []string
	for _, b := range p.buckets() {
		switch {
		case b.count > 0:
			counts = append(counts, fmt.Sprintf("%d %s", b.count, b.name))
		case b.count < 0:
			counts = append(counts, "all "+b.name)
		}
	}
	if len(counts) > 0 {
		parts = append(parts, strings.Join(counts, ", ")+" snapshots")
	}
	if len(p.Tags) > 0 {
		groups := make([]string, len(p.Tags))
		for i, g := range p.Tags {
			groups[i] = fmt.Sprint(g)
		}
		parts = append(parts, "all snapshots with tags "+strings.Join(groups, " or "))
	}
	if p.Within > 0 {
		parts = append(parts, "all snapshots within "+FormatDuration(p.Within)+" of the newest")
	}
	return "keep " + strings.Join(parts, " and ")
}

// bucket is one counted rule: the newest snapshot of each distinct period,
// until count periods are used up.
type bucket struct {
	count  int
	name   string // for String: "3 daily"
	flag   string // for Validate: "keep-daily"
	reason string
	period func(t time.Time, nr int) int // the period t falls in; nr is its place, newest first
}

func (p Policy) buckets() []bucket {
	return []bucket{
		{p.Last, "latest", "last", "last snapshot", func(_ time.Time, nr int) int { return nr }},
		{p.Hourly, "hourly", "hourly", "hourly snapshot", func(t time.Time, _ int) int {
			return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour()
		}},
		{p.Daily, "daily", "daily", "daily snapshot", func(t time.Time, _ int) int {
			return t.Year()*10000 + int(t.Month())*100 + t.Day()
		}},
		{p.Weekly, "weekly", "weekly", "weekly snapshot", func(t time.Time, _ int) int {
			y, w := t.ISOWeek()
			return y*100 + w
		}},
		{p.Monthly, "monthly", "monthly", "monthly snapshot", func(t time.Time, _ int) int {
			return t.Year()*100 + int(t.Month())
		}},
		{p.Yearly, "yearly", "yearly", "yearly snapshot", func(t time.Time, _ int) int {
			return t.Year()
		}},
	}
}

// Apply decides which snapshots of one group (see Group) to keep under p, by
// restic's algorithm. now is the current time; it only serves to ignore
// snapshots dated in the future when finding the newest one for Within.
// The ids in list must be distinct; list itself is not changed.
//
// The snapshots are sorted newest first (equal times: the greater id counts as
// newer, as in List and "latest"), then each is kept if
//   - it carries all tags of one group of p.Tags ("has tags [a b]");
//   - it is newer than Within before the newest snapshot dated before now
//     ("within 3d");
//   - for each count rule with periods left (Last, Hourly, ..., Yearly): it is
//     the newest of a period not seen yet, which uses up one period ("daily
//     snapshot"); the oldest snapshot of the list is also kept by every rule
//     that has periods left, even in a period already seen ("oldest daily
//     snapshot"), so that a new repository does not lose its first backup.
//
// keep and remove are newest first. reasons holds, for each kept snapshot, all
// rules that keep it, in the order above. An empty policy keeps everything,
// each with the reason "policy is empty".
func Apply(list []Entry, p Policy, now time.Time) (keep, remove []Entry, reasons map[repo.ID][]string) {
	list = slices.Clone(list)
	slices.SortStableFunc(list, newestFirst)
	reasons = make(map[repo.ID][]string)
	if p.Empty() {
		for _, e := range list {
			reasons[e.ID] = []string{"policy is empty"}
		}
		return list, nil, reasons
	}
	if len(list) == 0 {
		return nil, nil, reasons
	}

	buckets := p.buckets()
	last := make([]int, len(buckets))  // the period last kept by each bucket
	seen := make([]bool, len(buckets)) // whether it kept one yet

	var cutoff time.Time
	if p.Within > 0 {
		var latest time.Time
		for _, e := range list {
			if e.Time.After(latest) && e.Time.Before(now) {
				latest = e.Time
			}
		}
		cutoff = latest.Add(-p.Within)
	}

	oldest := len(list) - 1
	for nr, e := range list {
		var why []string
		for _, g := range p.Tags {
			if hasTags(e.Tags, g) {
				why = append(why, fmt.Sprintf("has tags %v", g))
			}
		}
		if p.Within > 0 && e.Time.After(cutoff) {
			why = append(why, "within "+FormatDuration(p.Within))
		}
		t := e.Time
		if p.Location != nil {
			t = t.In(p.Location)
		}
		for i := range buckets {
			b := &buckets[i]
			if b.count == 0 {
				continue
			}
			val := b.period(t, nr)
			same := seen[i] && val == last[i]
			if same && nr != oldest {
				continue
			}
			reason := b.reason
			if same {
				reason = "oldest " + reason
			}
			why = append(why, reason)
			last[i], seen[i] = val, true
			if b.count > 0 {
				b.count--
			}
		}
		if len(why) > 0 {
			keep = append(keep, e)
			reasons[e.ID] = why
		} else {
			remove = append(remove, e)
		}
	}
	return keep, remove, reasons
}

// newestFirst orders entries by time, newest first, then by id, greatest
// first: the reverse of List.
func newestFirst(a, b Entry) int {
	if c := b.Time.Compare(a.Time); c != 0 {
		return c
	}
	return strings.Compare(b.ID.String(), a.ID.String())
}

// hasTags reports whether tags holds every tag of want; a "" in want matches
// when tags is empty (restic's rule for an empty --keep-tag value).
func hasTags(tags, want []string) bool {
	for _, w := range want {
		if w == "" && len(tags) == 0 {
			return true
		}
		if !slices.Contains(tags, w) {
			return false
		}
	}
	return true
}

// FormatDuration prints d in days and hours where it can, as restic's
// durations read: 72h is "3d", 36h is "1d12h", 90m is "1h30m0s".
func FormatDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d <= 0 || d%time.Hour != 0 {
		return d.String()
	}
	days, hours := d/day, (d%day)/time.Hour
	switch {
	case days == 0:
		return fmt.Sprintf("%dh", hours)
	case hours == 0:
		return fmt.Sprintf("%dd", days)
	default:
		return fmt.Sprintf("%dd%dh", days, hours)
	}
}

// GroupBy says which fields put snapshots into separate groups before a
// policy is applied, as restic's --group-by. The kind always does: file and
// image snapshots never share a group. The zero GroupBy groups by kind only;
// forget's default is DefaultGroupBy.
type GroupBy struct {
	Host, Paths, Tags bool
}

// DefaultGroupBy is forget's default --group-by, as restic's.
const DefaultGroupBy = "host,paths"

// ParseGroupBy parses a --group-by value: a comma-separated list of host,
// paths and tags (or host(s), path(s), tag(s)); "" groups by kind only.
func ParseGroupBy(s string) (GroupBy, error) {
	var by GroupBy
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "host", "hosts":
			by.Host = true
		case "path", "paths":
			by.Paths = true
		case "tag", "tags":
			by.Tags = true
		case "":
		default:
			return GroupBy{}, fmt.Errorf("unknown --group-by field %q (want host, paths or tags)", f)
		}
	}
	return by, nil
}

// String returns the --group-by value that parses to by.
func (by GroupBy) String() string {
	var f []string
	if by.Host {
		f = append(f, "host")
	}
	if by.Paths {
		f = append(f, "paths")
	}
	if by.Tags {
		f = append(f, "tags")
	}
	return strings.Join(f, ",")
}

// GroupKey is what the snapshots of one group share. Fields not grouped by
// are empty.
type GroupKey struct {
	By    GroupBy
	Kind  string   // repo.KindFile or repo.KindImage
	Host  string   // when By.Host
	Paths []string // when By.Paths: sorted
	Tags  []string // when By.Tags: sorted, without duplicates
}

// String prints k for messages, e.g. "host alpha, paths [/home]"; the kind
// shows when it is not file ("kind image, host alpha, paths [/dev/sda]"), or
// when it is all there is to show ("kind file").
func (k GroupKey) String() string {
	var f []string
	if k.Kind != repo.KindFile || k.By == (GroupBy{}) {
		f = append(f, "kind "+k.Kind)
	}
	if k.By.Host {
		f = append(f, "host "+k.Host)
	}
	if k.By.Paths {
		f = append(f, fmt.Sprintf("paths %v", k.Paths))
	}
	if k.By.Tags {
		f = append(f, fmt.Sprintf("tags %v", k.Tags))
	}
	return strings.Join(f, ", ")
}

func (k GroupKey) compare(o GroupKey) int {
	return cmp.Or(
		cmp.Compare(k.Kind, o.Kind),
		cmp.Compare(k.Host, o.Host),
		slices.Compare(k.Paths, o.Paths),
		slices.Compare(k.Tags, o.Tags),
	)
}

// EntryGroup is one group of snapshots that a policy is applied to alone.
type EntryGroup struct {
	Key     GroupKey
	Entries []Entry // in the order of the list given to Group
}

// Group splits list into groups of the same kind and the fields of by, sorted
// by key (kind, host, paths, tags). list is not changed.
func Group(list []Entry, by GroupBy) []EntryGroup {
	var groups []EntryGroup
	index := make(map[string]int) // encoded key -> place in groups
	for _, e := range list {
		k := GroupKey{By: by, Kind: e.Kind}
		if k.Kind == "" {
			k.Kind = repo.KindFile
		}
		if by.Host {
			k.Host = e.Host
		}
		if by.Paths {
			k.Paths = slices.Sorted(slices.Values(e.Paths))
		}
		if by.Tags {
			k.Tags = slices.Compact(slices.Sorted(slices.Values(e.Tags)))
		}
		enc := fmt.Sprintf("%q %q %q %q", k.Kind, k.Host, k.Paths, k.Tags)
		i, ok := index[enc]
		if !ok {
			i = len(groups)
			index[enc] = i
			groups = append(groups, EntryGroup{Key: k})
		}
		groups[i].Entries = append(groups[i].Entries, e)
	}
	slices.SortFunc(groups, func(a, b EntryGroup) int { return a.Key.compare(b.Key) })
	return groups
}
