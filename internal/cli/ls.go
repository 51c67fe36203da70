package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	"github.com/spf13/cobra"

	"cairn/internal/repo"
	"cairn/internal/snapshot"
	"cairn/internal/vfs"
)

// nodeJSON is one entry as listed in JSON.
type nodeJSON struct {
	MessageType string `json:"message_type"` // "node"
	Path        string `json:"path"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Mode        string `json:"mode"`
	UID         uint32 `json:"uid"`
	GID         uint32 `json:"gid"`
	User        string `json:"user,omitempty"`
	Group       string `json:"group,omitempty"`
	Size        uint64 `json:"size"`
	MTime       string `json:"mtime"`
	ATime       string `json:"atime"`
	LinkTarget  string `json:"link_target,omitempty"`
	Links       uint64 `json:"links,omitempty"`
	Inode       uint64 `json:"inode,omitempty"`
}

func nsTime(ns int64) time.Time { return time.Unix(0, ns) }

func nodeToJSON(p string, n *repo.Node) nodeJSON {
	return nodeJSON{MessageType: "node", Path: p, Name: string(n.Name), Type: n.Type, Mode: fmt.Sprintf("%04o", n.Mode),
		UID: n.UID, GID: n.GID, User: n.User, Group: n.Group, Size: n.Size,
		MTime: nsTime(n.MTime).Format(time.RFC3339Nano), ATime: nsTime(n.ATime).Format(time.RFC3339Nano),
		LinkTarget: string(n.LinkTarget), Links: n.Links, Inode: n.Inode}
}

// modeString renders a node's type and mode as ls -l does.
func modeString(n *repo.Node) string {
	m := os.FileMode(n.Mode & 0777)
	switch n.Type {
	case repo.NodeDir:
		m |= os.ModeDir
	case repo.NodeSymlink:
		m |= os.ModeSymlink
	case repo.NodeDev:
		m |= os.ModeDevice
	case repo.NodeCharDev:
		m |= os.ModeDevice | os.ModeCharDevice
	case repo.NodeFIFO:
		m |= os.ModeNamedPipe
	case repo.NodeSocket:
		m |= os.ModeSocket
	}
	if n.Mode&04000 != 0 {
		m |= os.ModeSetuid
	}
	if n.Mode&02000 != 0 {
		m |= os.ModeSetgid
	}
	if n.Mode&01000 != 0 {
		m |= os.ModeSticky
	}
	return m.String()
}

func newLsCommand(g *globalOptions) *cobra.Command {
	var long, recursive bool
	var f filterOptions
	cmd := &cobra.Command{
		Use:   "ls SNAPSHOT [PATH]",
		Short: "List the files of a snapshot",
		Long:  "List the files of a snapshot, below PATH (default: everything).",
		Args:  rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			base := "/"
			if len(args) == 2 {
				base = cleanPath(args[1])
			}
			root, _, err := findEntry(ctx, g, r, args[0], base, f)
			if err != nil {
				return err
			}
			return vfs.Walk(ctx, root, base, func(p string, e *vfs.Entry) error {
				if p == "/" {
					return nil
				}
				g.printer.Result(nodeToJSON(p, e.Node), func(w io.Writer) {
					if !long {
						fmt.Fprintln(w, p)
						return
					}
					owner := e.Node.User
					if owner == "" {
						owner = fmt.Sprint(e.Node.UID)
					}
					group := e.Node.Group
					if group == "" {
						group = fmt.Sprint(e.Node.GID)
					}
					line := fmt.Sprintf("%s %8s %8s %12d %s %s", modeString(e.Node), owner, group, e.Node.Size,
						nsTime(e.Node.MTime).Local().Format("2006-01-02 15:04:05"), p)
					if e.Node.Type == repo.NodeSymlink {
						line += " -> " + string(e.Node.LinkTarget)
					}
					fmt.Fprintln(w, line)
				})
				if e.IsDir() && !recursive && p != base {
					return vfs.SkipDir
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&long, "long", "l", false, "long listing: mode, owner, size, time")
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", true, "list folders' content recursively")
	f.add(cmd)
	return cmd
}

func cleanPath(p string) string { return path.Clean("/" + p) }

// findEntry resolves SNAPSHOT and a path inside it.
func findEntry(ctx context.Context, g *globalOptions, r *repo.Repository, name, p string, f filterOptions) (*vfs.Entry, snapshot.Entry, error) {
	flt, err := f.filter()
	if err != nil {
		return nil, snapshot.Entry{}, err
	}
	s, err := snapshot.Find(ctx, r, name, flt)
	if err != nil {
		return nil, snapshot.Entry{}, err
	}
	root, err := vfs.Root(r, s.Snapshot)
	if err != nil {
		return nil, s, err
	}
	e, err := root.Lookup(ctx, p)
	if err != nil {
		return nil, s, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
	}
	return e, s, nil
}
