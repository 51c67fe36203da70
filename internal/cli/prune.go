package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"cairn/internal/prune"
	"cairn/internal/repo"
	"cairn/internal/ui"
)

type pruneOptions struct {
	maxUnused string
	dryRun    bool
}

func (o *pruneOptions) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.maxUnused, "max-unused", "5%", "leave at most this much unused space in partly used packs: `LIMIT` as a percentage of the repository")
}

func newPruneCommand(g *globalOptions) *cobra.Command {
	var o pruneOptions
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Reclaim the space no snapshot uses",
		Long: `Delete the data no snapshot uses: packs wholly unused are deleted, packs mostly
unused are repacked, and the index is rewritten. Prune takes an exclusive lock: it
does not run while a backup does.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
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
			return runPrune(cmd, g, r, o)
		},
	}
	o.add(cmd)
	cmd.Flags().BoolVarP(&o.dryRun, "dry-run", "n", false, "only say what would be deleted and repacked")
	return cmd
}

func parseMaxUnused(s string) (float64, error) {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
	if err != nil || v < 0 || v > 100 {
		return 0, usageError("--max-unused takes a percentage from 0%% to 100%%, not %q", s)
	}
	return v / 100, nil
}

type pruneSummary struct {
	MessageType     string `json:"message_type"` // "summary"
	DryRun          bool   `json:"dry_run"`
	Snapshots       int    `json:"snapshots"`
	BlobsUsed       int    `json:"blobs_used"`
	PacksKept       int    `json:"packs_kept"`
	PacksDeleted    int    `json:"packs_deleted"`
	PacksRepacked   int    `json:"packs_repacked"`
	BytesFreed      int64  `json:"bytes_freed"`
	BytesRepacked   int64  `json:"bytes_repacked"`
	BytesUnusedLeft int64  `json:"bytes_unused_left"`
}

func runPrune(cmd *cobra.Command, g *globalOptions, r *repo.Repository, o pruneOptions) error {
	maxUnused, err := parseMaxUnused(o.maxUnused)
	if err != nil {
		return err
	}
	res, err := prune.Prune(cmd.Context(), r, prune.Options{MaxUnused: maxUnused, DryRun: o.dryRun, Progress: func(f string, a ...any) {
		g.printer.Verbose(1, f, a...)
	}})
	if err != nil {
		return err
	}
	sum := pruneSummary{MessageType: "summary", DryRun: o.dryRun, Snapshots: res.Snapshots, BlobsUsed: res.BlobsUsed,
		PacksKept: res.PacksKept, PacksDeleted: res.PacksDeleted, PacksRepacked: res.PacksRepacked,
		BytesFreed: res.BytesDeleted - res.BytesRepacked, BytesRepacked: res.BytesRepacked, BytesUnusedLeft: res.BytesUnusedLeft}
	g.printer.Result(sum, func(w io.Writer) {
		verb := "deleted"
		if o.dryRun {
			verb = "would delete"
		}
		fmt.Fprintf(w, "%s %d packs, repacked %d (%s written again), freed %s; %s unused left in %d packs kept\n",
			verb, sum.PacksDeleted, sum.PacksRepacked, ui.Bytes(uint64(sum.BytesRepacked)), ui.Bytes(uint64(max(sum.BytesFreed, 0))),
			ui.Bytes(uint64(sum.BytesUnusedLeft)), sum.PacksKept)
	})
	return nil
}

// lock takes a lock on r for the command; the returned func releases it.
func (g *globalOptions) lock(cmd *cobra.Command, r *repo.Repository, exclusive bool) (func(), error) {
	l, err := r.Lock(cmd.Context(), exclusive)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := l.Unlock(); err != nil {
			g.printer.Error("", fmt.Errorf("remove lock: %w", err))
		}
	}, nil
}
