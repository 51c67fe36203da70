package cli

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	"cairn/internal/ui"
)

// globalOptions are the flags every command has.
type globalOptions struct {
	repo         string
	passwordFile string
	json         bool
	quiet        bool
	verbose      int
	insecureKDF  bool
	cacheDir     string
	noCache      bool
	// bypassCache is set by commands that must read the stored files themselves.
	bypassCache bool

	stdin          io.Reader
	stdout, stderr io.Writer
	printer        *ui.Printer
}

// NewRootCommand returns the cairn command with every subcommand, writing to stdout
// and stderr.
func NewRootCommand(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdin: stdin, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "cairn",
		Short: "Backups of whole disks and of files, deduplicated, compressed and encrypted",
		Long: `cairn backs up files and whole disks into one deduplicated, compressed,
encrypted repository, and restores them file by file or onto bare metal.

With no --repo, cairn uses a repository in your data folder, made on first use.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.printer = ui.NewPrinter(g.stdout, g.stderr, g.json, g.quiet, g.verbose)
			return nil
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	f := root.PersistentFlags()
	f.StringVarP(&g.repo, "repo", "r", os.Getenv("CAIRN_REPO"), "repository location (env CAIRN_REPO); default: a repository in your data folder")
	f.StringVar(&g.passwordFile, "password-file", os.Getenv("CAIRN_PASSWORD_FILE"), "read the password from this file (env CAIRN_PASSWORD_FILE; or set CAIRN_PASSWORD)")
	f.BoolVar(&g.json, "json", false, "machine-readable output: one JSON object per line")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "print only errors and the result")
	f.CountVarP(&g.verbose, "verbose", "v", "print more (repeat for even more)")
	f.StringVar(&g.cacheDir, "cache-dir", os.Getenv("CAIRN_CACHE_DIR"), "keep the local cache of remote repositories here (env CAIRN_CACHE_DIR); default: a folder in your cache folder")
	f.BoolVar(&g.noCache, "no-cache", false, "do not use the local cache of a remote repository")
	f.BoolVar(&g.insecureKDF, "insecure-kdf", false, "use a fast password hash for new keys (only for tests)")
	_ = f.MarkHidden("insecure-kdf")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: err}
	})

	root.AddCommand(
		newInitCommand(g),
		newBackupCommand(g),
		newSnapshotsCommand(g),
		newLsCommand(g),
		newCatCommand(g, "cat"),
		newCatCommand(g, "dump"),
		newRestoreCommand(g),
		newDiffCommand(g),
		newCheckCommand(g),
		newImageCommand(g),
		newMountCommand(g),
		newKeyCommand(g),
		newStatsCommand(g),
		newForgetCommand(g),
		newPruneCommand(g),
		newRepairCommand(g),
	)
	return root
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.RangeArgs(lo, hi)(cmd, args); err != nil {
			return &ExitError{Code: ExitUsage, Err: err}
		}
		return nil
	}
}
