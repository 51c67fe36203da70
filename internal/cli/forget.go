package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"cairn/internal/snapshot"
)

type forgetOptions struct {
	policy    snapshot.Policy
	within    string
	tags      []string
	groupBy   string
	dryRun    bool
	prune     bool
	pruneOpts pruneOptions
	filter    filterOptions
}

func newForgetCommand(g *globalOptions) *cobra.Command {
	var o forgetOptions
	cmd := &cobra.Command{
		Use:   "forget",
		Short: "Remove snapshots according to a retention policy",
		Long: `Remove the snapshots that the policy does not keep, in each group of snapshots
(by default: same host and same paths or devices; file and image snapshots are never
grouped together). The data they alone used stays until 'cairn prune'.

A count of -1 keeps every snapshot of that kind of period.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error { return runForget(cmd, g, o) },
	}
	f := cmd.Flags()
	f.IntVar(&o.policy.Last, "keep-last", 0, "keep the `N` newest snapshots")
	f.IntVar(&o.policy.Hourly, "keep-hourly", 0, "keep the newest snapshot of each of the last `N` hours that have one")
	f.IntVar(&o.policy.Daily, "keep-daily", 0, "keep the newest snapshot of each of the last `N` days that have one")
	f.IntVar(&o.policy.Weekly, "keep-weekly", 0, "keep the newest snapshot of each of the last `N` weeks that have one")
	f.IntVar(&o.policy.Monthly, "keep-monthly", 0, "keep the newest snapshot of each of the last `N` months that have one")
	f.IntVar(&o.policy.Yearly, "keep-yearly", 0, "keep the newest snapshot of each of the last `N` years that have one")
	f.StringVar(&o.within, "keep-within", "", "keep every snapshot within `DURATION` of the newest (e.g. 7d, 36h, 1y2m)")
	f.StringArrayVar(&o.tags, "keep-tag", nil, "keep snapshots with all of these `TAGS` (comma-separated; repeatable)")
	f.StringVar(&o.groupBy, "group-by", snapshot.DefaultGroupBy, "group snapshots by `KEYS`: host, paths, tags (comma-separated)")
	f.BoolVarP(&o.dryRun, "dry-run", "n", false, "only show what would be kept and removed, and why")
	f.BoolVar(&o.prune, "prune", false, "then reclaim the space the removed snapshots used (as 'cairn prune')")
	o.pruneOpts.add(cmd)
	o.filter.add(cmd)
	return cmd
}

// parseWithin reads durations like 7d, 36h, 2w, 1y2m3d (y=365d, m=30d, w=7d).
func parseWithin(s string) (time.Duration, error) {
	var total time.Duration
	num := ""
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			num += string(c)
		default:
			unit := map[rune]time.Duration{'y': 365 * 24 * time.Hour, 'm': 30 * 24 * time.Hour, 'w': 7 * 24 * time.Hour, 'd': 24 * time.Hour, 'h': time.Hour}[c]
			if unit == 0 || num == "" {
				return 0, fmt.Errorf("invalid duration %q: use a number and y, m, w, d or h, such as 7d or 1y6m", s)
			}
			n, err := strconv.ParseInt(num, 10, 32)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q: %w", s, err)
			}
			total += time.Duration(n) * unit
			num = ""
		}
	}
	if num != "" {
		return 0, fmt.Errorf("invalid duration %q: %s has no unit", s, num)
	}
	return total, nil
}

type forgetGroupJSON struct {
	Group  string              `json:"group"`
	Keep   []string            `json:"keep"`
	Remove []string            `json:"remove"`
	Reason map[string][]string `json:"reasons"`
}

func runForget(cmd *cobra.Command, g *globalOptions, o forgetOptions) error {
	ctx := cmd.Context()
	p := o.policy
	if o.within != "" {
		d, err := parseWithin(o.within)
		if err != nil {
			return usageError("%v", err)
		}
		p.Within = d
	}
	for _, t := range o.tags {
		p.Tags = append(p.Tags, strings.Split(t, ","))
	}
	p.Location = time.Local
	if err := p.Validate(); err != nil {
		return usageError("%v", err)
	}
	if p.Empty() {
		return usageError("no policy given: say what to keep (--keep-last, --keep-daily, ...)")
	}
	by, err := snapshot.ParseGroupBy(o.groupBy)
	if err != nil {
		return usageError("%v", err)
	}
	r, err := g.openRepository(ctx, false)
	if err != nil {
		return err
	}
	defer r.Close()
	unlock, err := g.lock(cmd, r, true)
	if err != nil {
		return err
	}
	defer unlock()
	flt, err := o.filter.filter()
	if err != nil {
		return err
	}
	list, err := snapshot.List(ctx, r, flt)
	if err != nil {
		return err
	}
	var removed, kept int
	for _, grp := range snapshot.Group(list, by) {
		keep, remove, reasons := snapshot.Apply(grp.Entries, p, time.Now())
		out := forgetGroupJSON{Group: grp.Key.String(), Keep: []string{}, Remove: []string{}, Reason: map[string][]string{}}
		for _, k := range keep {
			out.Keep = append(out.Keep, k.ID.String())
			out.Reason[k.ID.String()] = reasons[k.ID]
		}
		for _, rm := range remove {
			out.Remove = append(out.Remove, rm.ID.String())
		}
		g.printer.Result(out, func(w io.Writer) {
			fmt.Fprintf(w, "%s: keep %d, remove %d (%s)\n", grp.Key, len(keep), len(remove), p)
			for _, k := range keep {
				fmt.Fprintf(w, "  keep    %s  %s  %s\n", k.ID.Short(), k.Time.Local().Format("2006-01-02 15:04:05"), strings.Join(reasons[k.ID], ", "))
			}
			for _, rm := range remove {
				fmt.Fprintf(w, "  remove  %s  %s\n", rm.ID.Short(), rm.Time.Local().Format("2006-01-02 15:04:05"))
			}
		})
		kept += len(keep)
		if o.dryRun {
			removed += len(remove)
			continue
		}
		for _, rm := range remove {
			if err := r.RemoveSnapshot(ctx, rm.ID); err != nil {
				return fmt.Errorf("remove snapshot %s: %w", rm.ID.Short(), err)
			}
			removed++
		}
	}
	g.printer.Result(map[string]any{"message_type": "summary", "kept": kept, "removed": removed, "dry_run": o.dryRun}, func(w io.Writer) {
		verb := "removed"
		if o.dryRun {
			verb = "would remove"
		}
		fmt.Fprintf(w, "%s %d snapshots, kept %d\n", verb, removed, kept)
	})
	if o.prune && removed > 0 {
		o.pruneOpts.dryRun = o.dryRun
		return runPrune(cmd, g, r, o.pruneOpts)
	}
	return nil
}
