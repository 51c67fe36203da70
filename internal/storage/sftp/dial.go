package sftp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Errors of connecting that a caller may want to tell apart (errors.Is).
var (
	// ErrUnknownHostKey: the server's host key is in no known_hosts file.
	ErrUnknownHostKey = errors.New("unknown ssh host key")
	// ErrHostKeyChanged: known_hosts holds other keys for the server than it shows,
	// or the key it shows is revoked. It may be an attack.
	ErrHostKeyChanged = errors.New("ssh host key changed")
	// ErrAuthFailed: the server accepted none of the keys offered.
	ErrAuthFailed = errors.New("ssh authentication failed")
)

const (
	// dialTimeout bounds the TCP connect and the ssh handshake.
	dialTimeout = 30 * time.Second
	// systemSSHConfig is read after the user's ~/.ssh/config, as ssh does.
	systemSSHConfig = "/etc/ssh/ssh_config"
)

// defaultIdentities are the key files ssh tries when the config names none.
var defaultIdentities = []string{"~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa"}

// target is a Config resolved through the ssh config files: everything dialing needs.
type target struct {
	alias        string // the Host the user gave
	hostname     string // what to connect to
	port         int
	user         string
	hostKeyAlias string   // the name to look up in known_hosts, if not hostname
	identities   []string // key files, expanded
	idsOnly      bool     // IdentitiesOnly: use only agent keys that match identities
	knownHosts   []string // known_hosts files, expanded (user files first)
	agentSock    string   // ssh-agent socket, "" for none
	home         string
}

// sshConfigs holds the parsed user and system ssh config files; either may be nil.
type sshConfigs struct {
	user, system *ssh_config.Config
}

// loadSSHConfigs decodes $HOME/.ssh/config and /etc/ssh/ssh_config afresh. A user
// config that does not parse is an error (ssh would refuse it too); a system one is
// skipped.
func loadSSHConfigs(home string) (sshConfigs, error) {
	var c sshConfigs
	file := filepath.Join(home, ".ssh", "config")
	if b, err := os.ReadFile(file); err == nil {
		if c.user, err = ssh_config.DecodeBytes(b); err != nil {
			return c, fmt.Errorf("ssh config %s: %v", file, oneLine(err))
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("ssh config: %w", err)
	}
	if b, err := os.ReadFile(systemSSHConfig); err == nil {
		c.system, _ = ssh_config.DecodeBytes(b)
	}
	return c, nil
}

// get returns the first value of key for host alias, from the user config first.
// Quotes around the whole value are removed (by ssh_config).
func (c sshConfigs) get(alias, key string) string {
	for _, cfg := range []*ssh_config.Config{c.user, c.system} {
		if cfg == nil {
			continue
		}
		if v, err := cfg.Get(alias, key); err == nil && v != "" {
			return v
		}
	}
	return ""
}

// getAll returns every value of key for host alias, the user config's first.
func (c sshConfigs) getAll(alias, key string) []string {
	var all []string
	for _, cfg := range []*ssh_config.Config{c.user, c.system} {
		if cfg == nil {
			continue
		}
		if v, err := cfg.GetAll(alias, key); err == nil {
			all = append(all, v...)
		}
	}
	return all
}

// resolve applies the ssh config files of the current $HOME to cfg, as ssh does:
// values given in cfg win, then the first value of the config files, then ssh's
// defaults.
func resolve(cfg Config) (target, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return target{}, fmt.Errorf("ssh: %w", err)
	}
	confs, err := loadSSHConfigs(home)
	if err != nil {
		return target{}, err
	}
	t := target{alias: cfg.Host, hostname: cfg.Host, port: cfg.Port, user: cfg.User, home: home}
	for _, key := range []string{"ProxyJump", "ProxyCommand"} {
		if v := (confs.get(cfg.Host, key)); v != "" && !strings.EqualFold(v, "none") {
			return target{}, fmt.Errorf("ssh config sets %s for %s, which cairn does not support; give a host it can reach directly", key, cfg.Host)
		}
	}
	localUser := localUserName()
	if t.user == "" {
		t.user = (confs.get(cfg.Host, "User"))
	}
	if t.user == "" {
		t.user = localUser
	}
	if t.user == "" {
		return target{}, errors.New("ssh: no user name: give one (sftp:user@host:path)")
	}
	if t.port == 0 {
		if v := (confs.get(cfg.Host, "Port")); v != "" {
			if t.port, err = strconv.Atoi(v); err != nil || t.port < 1 || t.port > 65535 {
				return target{}, fmt.Errorf("ssh config: Port %q of host %s is not a port number", v, cfg.Host)
			}
		}
	}
	if t.port == 0 {
		t.port = 22
	}
	tokens := map[byte]string{'%': "%", 'd': home, 'u': localUser, 'n': cfg.Host, 'h': cfg.Host, 'r': t.user, 'p': strconv.Itoa(t.port)}
	if v := (confs.get(cfg.Host, "HostName")); v != "" {
		t.hostname = expand(v, tokens, "")
	}
	tokens['h'] = t.hostname
	t.hostKeyAlias = (confs.get(cfg.Host, "HostKeyAlias"))

	ids := confs.getAll(cfg.Host, "IdentityFile")
	if len(ids) == 0 {
		ids = defaultIdentities
	}
	for _, id := range ids {
		if strings.EqualFold(id, "none") {
			continue
		}
		if p := expand(id, tokens, home); !slices.Contains(t.identities, p) {
			t.identities = append(t.identities, p)
		}
	}
	t.idsOnly = strings.EqualFold((confs.get(cfg.Host, "IdentitiesOnly")), "yes")

	userKH := confs.get(cfg.Host, "UserKnownHostsFile")
	if userKH == "" {
		userKH = "~/.ssh/known_hosts ~/.ssh/known_hosts2"
	}
	globalKH := confs.get(cfg.Host, "GlobalKnownHostsFile")
	if globalKH == "" {
		globalKH = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2"
	}
	for _, v := range []string{userKH, globalKH} {
		// ssh_config removed the quotes of a single quoted file name, which may
		// hold spaces: a value naming a file is one file, else a list.
		if f := expand(v, tokens, home); fileExists(f) {
			t.knownHosts = append(t.knownHosts, f)
			continue
		}
		for _, f := range splitArgs(v) {
			t.knownHosts = append(t.knownHosts, expand(f, tokens, home))
		}
	}

	t.agentSock = os.Getenv("SSH_AUTH_SOCK")
	switch v := (confs.get(cfg.Host, "IdentityAgent")); {
	case v == "" || v == "SSH_AUTH_SOCK":
	case strings.EqualFold(v, "none"):
		t.agentSock = ""
	case strings.HasPrefix(v, "$"):
		t.agentSock = os.Getenv(v[1:])
	default:
		t.agentSock = expand(v, tokens, home)
	}
	return t, nil
}

func fileExists(name string) bool {
	fi, err := os.Stat(name)
	return err == nil && !fi.IsDir()
}

// splitArgs splits an ssh config value of several arguments at spaces outside
// double quotes, and removes the quotes.
func splitArgs(v string) []string {
	var args []string
	var cur strings.Builder
	inArg, quoted := false, false
	for _, r := range v {
		switch {
		case r == '"':
			quoted = !quoted
			inArg = true
		case (r == ' ' || r == '\t') && !quoted:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// localUserName is the name of the user running cairn.
func localUserName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return os.Getenv("USER")
}

// expand replaces ssh config tokens (%d, %h, ...) in s and, if home is not empty, a
// leading ~/ by the home folder. Unknown tokens stay as they are.
func expand(s string, tokens map[byte]string, home string) string {
	if home != "" && (s == "~" || strings.HasPrefix(s, "~/")) {
		s = home + s[1:]
	}
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+1 < len(s) {
			if v, ok := tokens[s[i+1]]; ok {
				b.WriteString(v)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tilde writes a path under home as ~/..., for messages.
func (t target) tilde(p string) string {
	if rel, ok := strings.CutPrefix(p, t.home+string(filepath.Separator)); ok && t.home != "" {
		return "~/" + filepath.ToSlash(rel)
	}
	return p
}

// addr is host:port to connect to.
func (t target) addr() string { return net.JoinHostPort(t.hostname, strconv.Itoa(t.port)) }

// dial connects and logs in to t, checking the server's host key against the
// known_hosts files.
func dial(ctx context.Context, t target) (*ssh.Client, error) {
	auth, offered, authNotes, closeAgent := t.authMethods()
	defer closeAgent()

	var d net.Dialer
	d.Timeout = dialTimeout
	d.KeepAlive = 15 * time.Second
	conn, err := d.DialContext(ctx, "tcp", t.addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", t.addr(), unwrapOp(err))
	}

	// The name known_hosts holds the key under: [host]:port, or, as ssh does, a
	// HostKeyAlias alone.
	khAddr := net.JoinHostPort(t.hostname, strconv.Itoa(t.port))
	if t.hostKeyAlias != "" {
		khAddr = net.JoinHostPort(t.hostKeyAlias, "22")
	}
	check, algos, err := t.hostKeyCheck(khAddr, conn.RemoteAddr())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	var keyErr error // the host key check's own error, clearer than the handshake's
	config := &ssh.ClientConfig{
		User: t.user,
		Auth: auth,
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			keyErr = check(hostname, remote, key)
			return keyErr
		},
		HostKeyAlgorithms: algos,
		Timeout:           dialTimeout,
	}

	// The handshake ends at the deadline, or when ctx is done.
	deadline := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline) // fails only on a closed conn, as the handshake then will
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	c, chans, reqs, err := ssh.NewClientConn(conn, khAddr, config)
	stopped := stop()
	if err != nil {
		_ = conn.Close()
		var negErr *ssh.AlgorithmNegotiationError
		switch {
		case keyErr != nil:
			return nil, keyErr
		case !stopped:
			return nil, ctx.Err()
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, t.authError(offered, authNotes)
		case errors.As(err, &negErr) && algos != nil && strings.Contains(err.Error(), "host key"):
			return nil, kindErrorf(ErrHostKeyChanged, "WARNING: the server %s shows none of the host key types that known_hosts holds for it (%s); someone may be intercepting the connection, or the server's keys were replaced. Not connecting. If the change is expected, remove the old keys with: %s",
				t.addr(), strings.Join(algos, ", "), t.removeKeyCommand(khAddr))
		}
		return nil, fmt.Errorf("ssh to %s: %v", t.addr(), err)
	}
	if !stopped {
		_ = c.Close()
		return nil, ctx.Err()
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(c, chans, reqs), nil
}

// unwrapOp drops the *net.OpError and *os.SyscallError wrapping of a dial error,
// which repeats the address and the call.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err
	}
	var sc *os.SyscallError
	if errors.As(err, &sc) && sc.Err != nil {
		err = sc.Err
	}
	return err
}

// oneLine joins the lines of err's message.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// hostKeyCheck returns the callback that checks a server's key against t's
// known_hosts files, and the host key algorithms to ask for: those of the keys the
// files hold for the server (so that the check compares like with like), or nil
// for the default when they hold none.
func (t target) hostKeyCheck(khAddr string, remote net.Addr) (ssh.HostKeyCallback, []string, error) {
	var files []string
	for _, f := range t.knownHosts {
		if fileExists(f) {
			files = append(files, f)
		}
	}
	db, err := knownhosts.New(files...)
	if err != nil {
		return nil, nil, fmt.Errorf("ssh known_hosts: %v", oneLine(err))
	}
	var algos []string
	var ke *knownhosts.KeyError
	if err := db(khAddr, remote, probeKey{}); errors.As(err, &ke) && len(ke.Want) > 0 {
		known := map[string]bool{}
		for _, k := range ke.Want {
			known[k.Key.Type()] = true
			if k.Key.Type() == ssh.KeyAlgoRSA {
				known[ssh.KeyAlgoRSASHA512] = true
				known[ssh.KeyAlgoRSASHA256] = true
			}
		}
		for _, a := range ssh.SupportedAlgorithms().HostKeys {
			if known[a] {
				algos = append(algos, a)
			}
		}
		for _, a := range ssh.InsecureAlgorithms().HostKeys {
			if known[a] && !slices.Contains(algos, a) {
				algos = append(algos, a)
			}
		}
	}
	check := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return kindErrorf(ErrHostKeyChanged, "WARNING: the host key of %s (%s) is revoked in %s line %d. Not connecting",
				t.addr(), describeKey(key), t.tilde(re.Revoked.Filename), re.Revoked.Line)
		case errors.As(err, &ke) && len(ke.Want) == 0:
			return t.unknownKeyError(key, files)
		case errors.As(err, &ke):
			w := ke.Want[0]
			return kindErrorf(ErrHostKeyChanged, "WARNING: the host key of %s has CHANGED: the server shows %s, but %s line %d holds another key. Someone may be intercepting the connection (a man-in-the-middle attack), or the server's key was replaced. Not connecting. If the change is expected, remove the old key with: %s",
				t.addr(), describeKey(key), t.tilde(w.Filename), w.Line, t.removeKeyCommand(hostname))
		}
		return fmt.Errorf("ssh host key of %s: %v", t.addr(), err)
	}
	return check, algos, nil
}

// unknownKeyError says that the server's key is in none of files, and how to
// trust it.
func (t target) unknownKeyError(key ssh.PublicKey, files []string) error {
	where := "no known_hosts file exists"
	if len(files) > 0 {
		var names []string
		for _, f := range files {
			names = append(names, t.tilde(f))
		}
		where = "not in " + strings.Join(names, ", ")
	}
	khFile := "~/.ssh/known_hosts"
	if len(t.knownHosts) > 0 {
		khFile = t.tilde(t.knownHosts[0])
	}
	scan := "ssh-keyscan "
	if t.port != 22 {
		scan += "-p " + strconv.Itoa(t.port) + " "
	}
	scan += t.hostname + " >> " + shellWord(khFile)
	login := "ssh "
	if t.port != 22 && t.port != 0 {
		login += "-p " + strconv.Itoa(t.port) + " "
	}
	login += t.user + "@" + t.alias
	return kindErrorf(ErrUnknownHostKey, "the host key of %s is unknown (%s; %s). If that is the server's key, trust it by connecting once with %s, or with: %s",
		t.addr(), describeKey(key), where, login, scan)
}

// removeKeyCommand is the ssh-keygen command that deletes khAddr's keys from the
// first known_hosts file.
func (t target) removeKeyCommand(khAddr string) string {
	file := "~/.ssh/known_hosts"
	if len(t.knownHosts) > 0 {
		file = t.tilde(t.knownHosts[0])
	}
	return "ssh-keygen -R '" + knownhosts.Normalize(khAddr) + "' -f " + shellWord(file)
}

// shellWord quotes a file name for a shell command unless it needs none; a
// leading ~/ stays outside the quotes, to be expanded.
func shellWord(name string) string {
	if !strings.ContainsFunc(name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("/._-+~:@%", r)
	}) {
		return name
	}
	if rest, ok := strings.CutPrefix(name, "~/"); ok {
		return "~/'" + strings.ReplaceAll(rest, "'", `'\''`) + "'"
	}
	return "'" + strings.ReplaceAll(name, "'", `'\''`) + "'"
}

// describeKey names a key's type and SHA256 fingerprint, as ssh shows them.
func describeKey(key ssh.PublicKey) string {
	return key.Type() + " key " + ssh.FingerprintSHA256(key)
}

// probeKey is a key no known_hosts line holds; checking it lists the host's keys.
type probeKey struct{}

func (probeKey) Type() string                                 { return "cairn-probe" }
func (probeKey) Marshal() []byte                              { return []byte("cairn-probe") }
func (probeKey) Verify(data []byte, sig *ssh.Signature) error { return errors.New("probe key") }

// authMethods returns the public key auth of t: the agent's keys, then those of the
// identity files; notes on the keys for an authentication error; and a function
// that closes the agent connection.
func (t target) authMethods() ([]ssh.AuthMethod, int, []string, func()) {
	var (
		notes   []string
		signers []ssh.Signer
		idKeys  []ssh.PublicKey // public keys of the identity files, for IdentitiesOnly
		fileSig []ssh.Signer
		closeFn = func() {}
	)
	for _, id := range t.identities {
		b, err := os.ReadFile(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s (unreadable: %v)", t.tilde(id), unwrapPath(err)))
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		var pm *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &pm):
			if pm.PublicKey != nil {
				idKeys = append(idKeys, pm.PublicKey)
			}
			notes = append(notes, t.tilde(id)+" (passphrase-protected, and cairn cannot ask for the passphrase: add the key to ssh-agent with ssh-add)")
		case err != nil:
			notes = append(notes, fmt.Sprintf("%s (not a usable key: %v)", t.tilde(id), err))
		default:
			idKeys = append(idKeys, s.PublicKey())
			fileSig = append(fileSig, s)
			notes = append(notes, t.tilde(id))
		}
	}
	if t.agentSock != "" {
		if conn, err := net.DialTimeout("unix", t.agentSock, 5*time.Second); err != nil {
			notes = append(notes, fmt.Sprintf("ssh-agent (unreachable at %s: %v)", t.agentSock, unwrapOp(err)))
		} else {
			closeFn = func() { _ = conn.Close() }
			agentSigners, err := agent.NewClient(conn).Signers()
			if err != nil {
				notes = append(notes, fmt.Sprintf("ssh-agent (%v)", err))
			}
			n := 0
			for _, s := range agentSigners {
				if t.idsOnly && !slices.ContainsFunc(idKeys, func(k ssh.PublicKey) bool { return keysEqual(k, s.PublicKey()) }) {
					continue
				}
				signers = append(signers, s)
				n++
			}
			notes = append(notes, fmt.Sprintf("ssh-agent (%d keys)", n))
		}
	}
	for _, s := range fileSig {
		if !slices.ContainsFunc(signers, func(a ssh.Signer) bool { return keysEqual(a.PublicKey(), s.PublicKey()) }) {
			signers = append(signers, s)
		}
	}
	if len(signers) == 0 {
		return nil, 0, notes, closeFn
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, len(signers), notes, closeFn
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

// unwrapPath drops the *os.PathError wrapping, whose path the caller names.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// authError says that logging in failed and what was tried.
func (t target) authError(offered int, notes []string) error {
	if offered == 0 {
		var ids []string
		for _, id := range t.identities {
			ids = append(ids, t.tilde(id))
		}
		why := "no identity file (" + strings.Join(ids, ", ") + ") exists and no ssh-agent runs (SSH_AUTH_SOCK)"
		if len(notes) > 0 {
			why = strings.Join(notes, ", ")
		}
		return kindErrorf(ErrAuthFailed, "no usable ssh key to log in to %s@%s: %s", t.user, t.addr(), why)
	}
	return kindErrorf(ErrAuthFailed, "%s@%s accepted none of the keys offered (tried %s); check that the key is in the server's authorized_keys and the user name is right",
		t.user, t.addr(), strings.Join(notes, ", "))
}

// kindError is an error whose message is its own and that matches kind.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

// kindErrorf returns a one-line error with the formatted message that matches kind.
func kindErrorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
