package testserver

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshdPath is OpenSSH's server; it must be started by its absolute path.
const sshdPath = "/usr/sbin/sshd"

// SSHAlias is the Host alias of the server in SSHServer.HomeDir/.ssh/config.
const SSHAlias = "cairn-test-sshd"

// SSHServer is an OpenSSH server with the sftp subsystem (internal-sftp) on
// loopback, and a home folder for its clients whose .ssh holds a config with a
// Host alias for the server, its known_hosts line and the user's key. Tests set
// HOME to it (Env) so that they reach the server as users do. Its fields are
// read-only.
type SSHServer struct {
	// Addr is the server's host:port, such as 127.0.0.1:40123; Host and Port are
	// its parts.
	Addr string
	Host string
	Port int
	// User is the login name; KeyFile (in HomeDir/.ssh, named as ssh's default
	// identity of its type, without a passphrase) is authorised to log in.
	User    string
	KeyFile string
	// Alias (SSHAlias) is the Host entry of HomeDir/.ssh/config: HostName, Port,
	// User, IdentityFile and UserKnownHostsFile of the server.
	Alias string
	// HomeDir is the clients' home folder; KnownHostsFile is its
	// .ssh/known_hosts, which holds the server's host key, HostKey.
	HomeDir        string
	KnownHostsFile string
	HostKey        ssh.PublicKey
	// Dir is an empty folder on the server for the test's repositories, removed
	// when the test ends.
	Dir string

	shared bool   // named by CAIRN_TEST_SSHD_* and shared with other tests
	state  string // the private server's folder: config, host key, log

	mu   sync.Mutex
	cmd  *exec.Cmd // nil while stopped
	done chan struct{}
}

// SSHD returns a running sshd for t: the one named by the environment variables
// CAIRN_TEST_SSHD_ADDR (host:port), CAIRN_TEST_SSHD_USER, CAIRN_TEST_SSHD_KEY (a
// private key file) and CAIRN_TEST_SSHD_KNOWN_HOSTS (a known_hosts file with the
// server's key) if they are set, else one of t's own (SSHDPrivate). A shared server
// runs on this machine: Dir is made (and removed) by the test, in the folder
// CAIRN_TEST_SSHD_DIR if it is set, else in t.TempDir().
func SSHD(t testing.TB) *SSHServer {
	t.Helper()
	addr := os.Getenv("CAIRN_TEST_SSHD_ADDR")
	if addr == "" {
		return SSHDPrivate(t)
	}
	s := &SSHServer{
		Addr:   addr,
		User:   os.Getenv("CAIRN_TEST_SSHD_USER"),
		Alias:  SSHAlias,
		Dir:    t.TempDir(),
		shared: true,
	}
	if base := os.Getenv("CAIRN_TEST_SSHD_DIR"); base != "" {
		dir, err := os.MkdirTemp(base, "test-")
		if err != nil {
			t.Fatalf("CAIRN_TEST_SSHD_DIR: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		s.Dir = dir
	}
	keyFile, khFile := os.Getenv("CAIRN_TEST_SSHD_KEY"), os.Getenv("CAIRN_TEST_SSHD_KNOWN_HOSTS")
	if s.User == "" || keyFile == "" || khFile == "" {
		t.Fatal("CAIRN_TEST_SSHD_ADDR is set but CAIRN_TEST_SSHD_USER, CAIRN_TEST_SSHD_KEY or CAIRN_TEST_SSHD_KNOWN_HOSTS is not")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("CAIRN_TEST_SSHD_ADDR=%q: %v", addr, err)
	}
	s.Host = host
	if s.Port, err = strconv.Atoi(port); err != nil {
		t.Fatalf("CAIRN_TEST_SSHD_ADDR=%q: bad port", addr)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("CAIRN_TEST_SSHD_KEY: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatalf("CAIRN_TEST_SSHD_KEY %s: %v", keyFile, err)
	}
	known, err := os.ReadFile(khFile)
	if err != nil {
		t.Fatalf("CAIRN_TEST_SSHD_KNOWN_HOSTS: %v", err)
	}
	if s.HostKey = findHostKey(known, addr); s.HostKey == nil {
		t.Fatalf("CAIRN_TEST_SSHD_KNOWN_HOSTS %s holds no key of %s", khFile, knownhosts.Normalize(addr))
	}
	s.writeHome(t, keyPEM, signer.PublicKey(), known)
	return s
}

// SSHDPrivate starts an sshd of t's own (/usr/sbin/sshd -D -e) on a free loopback
// port, with a fresh host key and user key, logging in the current user (root, in
// the tests), and stops it when t ends. Unlike SSHD's server it may be stopped and
// restarted, and its Log read. A missing sshd fails t.
func SSHDPrivate(t testing.TB) *SSHServer {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Fatalf("%s not installed (package openssh-server): .ci/run installs it", sshdPath)
	}
	// Privilege separation needs its empty folder.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("sshd needs /run/sshd: %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHServer{Host: "127.0.0.1", User: u.Username, Alias: SSHAlias, Dir: t.TempDir(), state: t.TempDir()}

	hostSigner, hostPEM := newKey(t)
	s.HostKey = hostSigner.PublicKey()
	userSigner, userPEM := newKey(t)
	hostKeyFile := filepath.Join(s.state, "ssh_host_ed25519_key")
	authKeys := filepath.Join(s.state, "authorized_keys")
	writeFile(t, hostKeyFile, hostPEM, 0o600)
	writeFile(t, authKeys, ssh.MarshalAuthorizedKey(userSigner.PublicKey()), 0o600)

	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	var startErr error
	for range 5 { // another process may take the free port before sshd binds it
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s.Port = l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		config := strings.Join([]string{
			"ListenAddress " + s.Addr,
			"HostKey " + quote(hostKeyFile),
			"PidFile none",
			"UsePAM no",
			"StrictModes no",
			"PermitRootLogin prohibit-password",
			"PubkeyAuthentication yes",
			"PasswordAuthentication no",
			"KbdInteractiveAuthentication no",
			"AuthorizedKeysFile " + quote(strings.ReplaceAll(authKeys, "%", "%%")),
			"Subsystem sftp internal-sftp",
			"UseDNS no",
			"LogLevel INFO",
			"MaxStartups 100",
			"MaxSessions 100",
			"",
		}, "\n")
		writeFile(t, filepath.Join(s.state, "sshd_config"), []byte(config), 0o600)
		if startErr = s.start(); startErr == nil {
			break
		}
		if !strings.Contains(startErr.Error(), "Address already in use") {
			break
		}
	}
	if startErr != nil {
		t.Fatal(startErr)
	}
	known := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey) + "\n"
	s.writeHome(t, userPEM, userSigner.PublicKey(), []byte(known))
	return s
}

// newKey returns a new ed25519 key and its OpenSSH PEM encoding.
func newKey(t testing.TB) (ssh.Signer, []byte) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

func writeFile(t testing.TB, name string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
}

// quote writes s as one sshd_config argument.
func quote(s string) string { return `"` + s + `"` }

// writeHome makes HomeDir with .ssh/config, .ssh/known_hosts and the user's key.
func (s *SSHServer) writeHome(t testing.TB, keyPEM []byte, pub ssh.PublicKey, known []byte) {
	t.Helper()
	s.HomeDir = t.TempDir()
	sshDir := filepath.Join(s.HomeDir, ".ssh")
	if err := os.Mkdir(sshDir, 0o700); err != nil {
		t.Fatal(err)
	}
	name := "id_ed25519"
	switch pub.Type() {
	case ssh.KeyAlgoRSA:
		name = "id_rsa"
	case ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521:
		name = "id_ecdsa"
	}
	s.KeyFile = filepath.Join(sshDir, name)
	writeFile(t, s.KeyFile, keyPEM, 0o600)
	writeFile(t, s.KeyFile+".pub", ssh.MarshalAuthorizedKey(pub), 0o644)
	s.KnownHostsFile = filepath.Join(sshDir, "known_hosts")
	writeFile(t, s.KnownHostsFile, known, 0o600)
	config := fmt.Sprintf("Host %s\n    HostName %s\n    Port %d\n    User %s\n    IdentityFile ~/.ssh/%s\n    UserKnownHostsFile ~/.ssh/known_hosts\n",
		s.Alias, s.Host, s.Port, s.User, name)
	writeFile(t, filepath.Join(sshDir, "config"), []byte(config), 0o600)
}

// findHostKey returns the key that known_hosts content holds for addr, or nil.
func findHostKey(known []byte, addr string) ssh.PublicKey {
	want := knownhosts.Normalize(addr)
	for rest := known; len(rest) > 0; {
		_, hosts, key, _, next, err := ssh.ParseKnownHosts(rest)
		if err != nil {
			return nil
		}
		for _, h := range hosts {
			if knownhosts.Normalize(h) == want {
				return key
			}
		}
		rest = next
	}
	return nil
}

// Env points the rest of t at HomeDir (t.Setenv): HOME is set to it and
// SSH_AUTH_SOCK cleared, so that no agent of the person running the tests takes
// part.
func (s *SSHServer) Env(t testing.TB) {
	t.Helper()
	t.Setenv("HOME", s.HomeDir)
	t.Setenv("SSH_AUTH_SOCK", "")
}

// Location returns the repository location of dir on the server through the
// Host alias, as cairn's --repo takes it: sftp:cairn-test-sshd:DIR.
func (s *SSHServer) Location(dir string) string { return "sftp:" + s.Alias + ":" + dir }

// start runs sshd with the config in s.state and waits until it accepts
// connections.
func (s *SSHServer) start() error {
	logFile, err := os.OpenFile(s.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", filepath.Join(s.state, "sshd_config"))
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed: the status says so
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("sshd exited at start: %s", s.logTail())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("sshd did not listen on %s within 20s: %s", s.Addr, s.logTail())
}

func (s *SSHServer) logFile() string { return filepath.Join(s.state, "sshd.log") }

// Log returns what the private server logged (connections and logins); a shared
// server's log is not at hand, so it returns "".
func (s *SSHServer) Log() string {
	if s.shared {
		return ""
	}
	b, _ := os.ReadFile(s.logFile())
	return string(b)
}

// logTail returns the end of the log, for error messages.
func (s *SSHServer) logTail() string {
	msg := strings.TrimSpace(s.Log())
	if len(msg) > 2000 {
		msg = "..." + msg[len(msg)-2000:]
	}
	if msg == "" {
		return "(no output)"
	}
	return msg
}

// stop kills the server and every session process it started, if running, and
// waits for the server to exit.
func (s *SSHServer) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	killTree(cmd.Process)
	<-done
}

// Stop kills the server and its sessions at once (SIGKILL), as a crash or reboot
// would, and waits until the server has exited; connections drop. Only a server
// from SSHDPrivate can be stopped.
func (s *SSHServer) Stop(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("Stop of a shared sshd: use SSHDPrivate")
	}
	s.stop()
}

// Restart starts a stopped server again on the same port with the same keys (or,
// if it is running, kills it first).
func (s *SSHServer) Restart(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("Restart of a shared sshd: use SSHDPrivate")
	}
	s.stop()
	if err := s.start(); err != nil {
		t.Fatalf("restart sshd: %v", err)
	}
}
