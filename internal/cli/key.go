package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func newKeyCommand(g *globalOptions) *cobra.Command {
	var newPasswordFile string
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage the passwords (keys) of a repository",
	}
	newPassword := func() (string, error) {
		if newPasswordFile != "" {
			b, err := os.ReadFile(newPasswordFile)
			if err != nil {
				return "", fmt.Errorf("new password file: %w", err)
			}
			pw := strings.TrimRight(string(b), "\r\n")
			if pw == "" {
				return "", fmt.Errorf("new password file %s is empty", newPasswordFile)
			}
			return pw, nil
		}
		return g.readPassword("enter the new password: ", true)
	}
	add := &cobra.Command{
		Use:   "add",
		Short: "Add a password that opens the repository",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := newPassword()
			if err != nil {
				return err
			}
			name, err := r.AddKey(ctx, pw, g.kdf())
			if err != nil {
				return err
			}
			g.printer.Result(map[string]any{"message_type": "summary", "key": name}, func(w io.Writer) {
				fmt.Fprintf(w, "key %s added\n", name[:8])
			})
			return nil
		},
	}
	passwd := &cobra.Command{
		Use:   "passwd",
		Short: "Change the password in use",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			pw, err := newPassword()
			if err != nil {
				return err
			}
			name, err := r.ChangePassword(ctx, pw, g.kdf())
			if err != nil {
				return err
			}
			g.printer.Result(map[string]any{"message_type": "summary", "key": name}, func(w io.Writer) {
				fmt.Fprintf(w, "password changed (key %s)\n", name[:8])
			})
			return nil
		},
	}
	for _, c := range []*cobra.Command{add, passwd} {
		c.Flags().StringVar(&newPasswordFile, "new-password-file", "", "read the new password from `FILE`")
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.Keys(ctx)
			if err != nil {
				return err
			}
			type keyJSON struct {
				ID      string `json:"id"`
				Created string `json:"created"`
				Host    string `json:"host"`
				User    string `json:"user"`
				Current bool   `json:"current"`
			}
			out := []keyJSON{}
			for _, k := range keys {
				out = append(out, keyJSON{ID: k.Name, Created: k.Created.Format("2006-01-02 15:04:05"), Host: k.Host, User: k.User, Current: k.Current})
			}
			g.printer.Result(out, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, " \tID\tCreated\tHost\tUser")
				for _, k := range out {
					mark := " "
					if k.Current {
						mark = "*"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", mark, k.ID[:8], k.Created, k.Host, k.User)
				}
				_ = tw.Flush()
			})
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key (not the one in use)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			r, err := g.openRepository(ctx, false)
			if err != nil {
				return err
			}
			defer r.Close()
			keys, err := r.Keys(ctx)
			if err != nil {
				return err
			}
			var match []string
			for _, k := range keys {
				if strings.HasPrefix(k.Name, args[0]) {
					match = append(match, k.Name)
				}
			}
			if len(match) != 1 {
				return fmt.Errorf("key %q: %d keys match", args[0], len(match))
			}
			if err := r.RemoveKey(ctx, match[0]); err != nil {
				return err
			}
			g.printer.Result(map[string]any{"message_type": "summary", "removed": match[0]}, func(w io.Writer) {
				fmt.Fprintf(w, "key %s removed\n", match[0][:8])
			})
			return nil
		},
	}
	cmd.AddCommand(add, list, remove, passwd)
	return cmd
}
