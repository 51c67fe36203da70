package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/term"

	"cairn/internal/crypto"
	"cairn/internal/repo"
)

// location is where a repository is, as resolved from --repo or the default.
type location struct {
	spec      string // as given, or the default path
	isDefault bool
}

// defaultRepoPath returns the default repository's folder: $XDG_DATA_HOME/cairn
// (~/.local/share/cairn) or %LOCALAPPDATA%\cairn.
func defaultRepoPath() (string, error) {
	if runtime.GOOS == "windows" {
		if d := os.Getenv("LOCALAPPDATA"); d != "" {
			return filepath.Join(d, "cairn"), nil
		}
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "cairn"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --repo given and no home folder for the default repository: %w", err)
	}
	return filepath.Join(home, ".local", "share", "cairn"), nil
}

// keyFilePath is where the default repository's generated password is kept.
func keyFilePath(repoPath string) string { return repoPath + ".key" }

func (g *globalOptions) location() (location, error) {
	if g.repo != "" {
		return location{spec: g.repo}, nil
	}
	p, err := defaultRepoPath()
	if err != nil {
		return location{}, err
	}
	return location{spec: p, isDefault: true}, nil
}

// localPath returns the folder of a local repository, or "" for a remote one.
func (l location) localPath() string {
	if isRemote(l.spec) {
		return ""
	}
	p, err := filepath.Abs(l.spec)
	if err != nil {
		return l.spec
	}
	return p
}

func (g *globalOptions) kdf() crypto.KDFParams {
	if g.insecureKDF {
		return crypto.FastKDFParams
	}
	return crypto.KDFParams{}
}

// errNoPassword says how to give a password when none could be found.
var errNoPassword = errors.New("no password given: use --password-file, CAIRN_PASSWORD_FILE or CAIRN_PASSWORD, or run on a terminal")

// givenPassword returns a password from --password-file or CAIRN_PASSWORD, or ok=false.
func (g *globalOptions) givenPassword() (string, bool, error) {
	if g.passwordFile != "" {
		b, err := os.ReadFile(g.passwordFile)
		if err != nil {
			return "", false, fmt.Errorf("password file: %w", err)
		}
		pw := strings.TrimRight(string(b), "\r\n")
		if pw == "" {
			return "", false, fmt.Errorf("password file %s is empty", g.passwordFile)
		}
		return pw, true, nil
	}
	if pw, ok := os.LookupEnv("CAIRN_PASSWORD"); ok && pw != "" {
		return pw, true, nil
	}
	return "", false, nil
}

// readPassword asks on the terminal; twice when confirm is set.
func (g *globalOptions) readPassword(prompt string, confirm bool) (string, error) {
	f, ok := g.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errNoPassword
	}
	ask := func(p string) (string, error) {
		fmt.Fprint(g.stderr, p)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(g.stderr)
		return string(b), err
	}
	pw, err := ask(prompt)
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("empty password")
	}
	if confirm {
		again, err := ask("enter the password again: ")
		if err != nil {
			return "", err
		}
		if again != pw {
			return "", errors.New("the passwords do not match")
		}
	}
	return pw, nil
}

// initRepository creates a repository at l. For the default repository with no
// password given, it generates one into a key file beside it and says so, once.
func (g *globalOptions) initRepository(ctx context.Context, l location) (*repo.Repository, error) {
	pw, ok, err := g.givenPassword()
	if err != nil {
		return nil, err
	}
	var keyFile string
	if !ok && l.isDefault {
		keyFile = keyFilePath(l.localPath())
		if b, err := os.ReadFile(keyFile); err == nil {
			pw = strings.TrimSpace(string(b))
		} else {
			pw, err = newKeyFile(keyFile)
			if err != nil {
				return nil, err
			}
		}
		ok = true
	}
	if !ok {
		if pw, err = g.readPassword("enter a password for the new repository: ", true); err != nil {
			return nil, err
		}
	}
	st, err := g.openStorage(ctx, l, true)
	if err != nil {
		return nil, err
	}
	r, err := repo.Init(ctx, st, pw, repo.Options{KDF: g.kdf()})
	if err != nil {
		return nil, err
	}
	g.printer.Message("created repository %s at %s", r.ID()[:10], st.Location())
	if keyFile != "" {
		g.printer.Notice("The key of this repository is in %s\n"+
			"Keep a copy of it somewhere safe, away from this computer: without it the backups cannot be read.", keyFile)
	}
	return r, nil
}

func newKeyFile(path string) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	pw := base64.RawURLEncoding.EncodeToString(b[:])
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(pw + "\n"); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	return pw, f.Close()
}

// openRepository opens the repository; the default one is created on first use when
// create is set.
func (g *globalOptions) openRepository(ctx context.Context, create bool) (*repo.Repository, error) {
	l, err := g.location()
	if err != nil {
		return nil, err
	}
	st, err := g.openStorage(ctx, l, false)
	if errors.Is(err, fs.ErrNotExist) && l.localPath() != "" {
		// A repository that lost its config is not made anew over its data.
		if keys, _ := os.ReadDir(filepath.Join(l.localPath(), "keys")); len(keys) > 0 {
			return nil, fmt.Errorf("%s: the repository cannot be opened: its config file is missing (it holds the repository's id and chunker settings; keys/ and the data are still there)", l.localPath())
		}
	}
	if errors.Is(err, fs.ErrNotExist) && l.isDefault && create {
		return g.initRepository(ctx, l)
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (create one with 'cairn init')", err)
		}
		return nil, err
	}
	pw, ok, err := g.givenPassword()
	if err != nil {
		return nil, err
	}
	if !ok && l.isDefault {
		if b, err := os.ReadFile(keyFilePath(l.localPath())); err == nil {
			pw, ok = strings.TrimSpace(string(b)), true
		}
	}
	if !ok {
		if pw, err = g.readPassword("enter the repository password: ", false); err != nil {
			return nil, err
		}
	}
	r, err := repo.OpenWith(ctx, st, pw, g.openOptions(l))
	if err != nil {
		return nil, err
	}
	for id, err := range r.DamagedIndexFiles() {
		g.printer.Warning("index "+id.Short(), fmt.Sprintf("%v; run 'cairn repair index'", err))
	}
	return r, nil
}

// readLines reads a file of patterns, one a line, skipping blanks and # comments.
func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out, s.Err()
}
