package sftp

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"cairn/internal/storage"
	"cairn/internal/testserver"
)

// newKeyPEM returns a new ed25519 key in OpenSSH's PEM format, encrypted with
// passphrase if it is not empty, and its public key.
func newKeyPEM(t *testing.T, passphrase string) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), sshPub
}

// createErr tries to create a repository at spec and returns the error, failing
// t if there is none or it is not one line.
func createErr(t *testing.T, spec string) error {
	t.Helper()
	s, err := Create(testCtx(t), parse(t, spec))
	if err == nil {
		s.Close()
		t.Fatalf("Create(%s) succeeded", spec)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error of several lines: %q", err)
	}
	t.Logf("Create(%s): %v", spec, err)
	return err
}

// mustContain fails t unless msg contains each of parts.
func mustContain(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("error %q does not say %q", msg, p)
		}
	}
}

// TestSSHConfig reaches the server through a Host alias whose every setting is
// needed: HostName, Port, User, IdentityFile (with a token) and
// UserKnownHostsFile in places ssh would not look by default.
func TestSSHConfig(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	home := srv.HomeDir
	for _, d := range []string{"keys", "kh dir"} {
		if err := os.Mkdir(filepath.Join(home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(srv.KeyFile, filepath.Join(home, "keys", srv.User+"-key")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(srv.KnownHostsFile, filepath.Join(home, "kh dir", "hosts")); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(home, ".ssh", "config")
	writeConfig := func(port int) {
		text := fmt.Sprintf(`# not the test server's own alias
Host other
    Port 1

Host backup-box
    HostName %s
    Port %d
    User %s
    IdentityFile ~/keys/%%r-key
    UserKnownHostsFile "~/kh dir/hosts"

Host *
    User nobody-here
`, srv.Host, port, srv.User)
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(srv.Port)
	dir := filepath.Join(srv.Dir, "repo")
	s := createAt(t, "sftp:backup-box:"+dir)
	if err := s.Save(testCtx(t), storage.Handle{Type: storage.ConfigFile}, []byte("c")); err != nil {
		t.Fatal(err)
	}
	s.Close()

	// The location's user and port win over the config's.
	err := createErr(t, "sftp:someone-else@backup-box:"+dir)
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("a user the server does not know: %v, want an error matching ErrAuthFailed", err)
	}
	mustContain(t, err.Error(), "someone-else@"+srv.Addr)
	closed := closedPort(t)
	err = createErr(t, fmt.Sprintf("sftp://backup-box:%d%s", closed, dir))
	mustContain(t, err.Error(), net.JoinHostPort(srv.Host, strconv.Itoa(closed)), "refused")

	// The config is read afresh for each connection.
	writeConfig(closed)
	err = createErr(t, "sftp:backup-box:"+dir)
	mustContain(t, err.Error(), strconv.Itoa(closed), "refused")
	writeConfig(srv.Port)
	if s, err := Open(testCtx(t), parse(t, "sftp:backup-box:"+dir)); err != nil {
		t.Errorf("Open after the config was fixed: %v", err)
	} else {
		s.Close()
	}

	// HostKeyAlias: known_hosts holds the key under that name alone. (The entry
	// comes after "Host *", whose User is the first, so the location names one.)
	appendFile(t, config, fmt.Sprintf("\nHost aliased\n    HostName %s\n    Port %d\n    IdentityFile ~/keys/%%r-key\n    UserKnownHostsFile ~/kh2\n    HostKeyAlias mybox\n",
		srv.Host, srv.Port))
	appendFile(t, filepath.Join(home, "kh2"), knownhosts.Line([]string{"mybox"}, srv.HostKey)+"\n")
	createAt(t, "sftp:"+srv.User+"@aliased:"+filepath.Join(srv.Dir, "repo2"))
	err = createErr(t, "sftp:aliased:"+filepath.Join(srv.Dir, "repo3"))
	mustContain(t, err.Error(), "nobody-here@")

	// Settings cairn cannot honour are refused, not ignored.
	appendFile(t, config, "\nHost jumpy\n    HostName 127.0.0.1\n    ProxyJump bastion\n")
	err = createErr(t, "sftp:jumpy:"+dir)
	mustContain(t, err.Error(), "ProxyJump")

	// A config that does not parse is named.
	appendFile(t, config, "\nMatch exec \"true\"\n")
	err = createErr(t, "sftp:backup-box:"+dir)
	mustContain(t, err.Error(), config)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestUnknownHostKey: a server missing from known_hosts is refused with the
// command that trusts it, and that command works.
func TestUnknownHostKey(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	loc := srv.Location(filepath.Join(srv.Dir, "repo"))
	fingerprint := ssh.FingerprintSHA256(srv.HostKey)
	scan := fmt.Sprintf("ssh-keyscan -p %d %s >> ~/.ssh/known_hosts", srv.Port, srv.Host)

	if err := os.Remove(srv.KnownHostsFile); err != nil {
		t.Fatal(err)
	}
	err := createErr(t, loc)
	if !errors.Is(err, ErrUnknownHostKey) || errors.Is(err, ErrHostKeyChanged) {
		t.Errorf("no known_hosts: %v, want an error matching ErrUnknownHostKey only", err)
	}
	mustContain(t, err.Error(), "unknown", fingerprint, "no known_hosts file exists", scan)

	// known_hosts with other hosts only.
	other := knownhosts.Line([]string{"example.org"}, srv.HostKey) + "\n"
	appendFile(t, srv.KnownHostsFile, other)
	err = createErr(t, loc)
	if !errors.Is(err, ErrUnknownHostKey) {
		t.Errorf("known_hosts without the server: %v, want an error matching ErrUnknownHostKey", err)
	}
	mustContain(t, err.Error(), "not in ~/.ssh/known_hosts", scan)

	// Do as the error says: ssh-keyscan (the real one) trusts the server.
	if _, err := exec.LookPath("ssh-keyscan"); err != nil {
		t.Fatal("ssh-keyscan not installed (package openssh-client): .ci/run installs it")
	}
	if out, err := exec.Command("bash", "-c", scan).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", scan, err, out)
	}
	createAt(t, loc)

	// Hashed names (ssh's HashKnownHosts) match too.
	if out, err := exec.Command("ssh-keygen", "-H", "-f", srv.KnownHostsFile).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -H: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(srv.KnownHostsFile); strings.Contains(string(b), srv.Host) {
		t.Fatalf("ssh-keygen -H left plain names:\n%s", b)
	}
	createAt(t, srv.Location(filepath.Join(srv.Dir, "repo2")))
}

// TestChangedHostKey: a server whose key differs from the one known is refused
// with an alarm, whether the known key has the same type, another type, or the
// shown key is revoked.
func TestChangedHostKey(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	loc := srv.Location(filepath.Join(srv.Dir, "repo"))
	name := knownhosts.Normalize(srv.Addr)
	_, otherKey := newKeyPEM(t, "")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(srv.KnownHostsFile, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write("# comment\n" + knownhosts.Line([]string{"example.org"}, srv.HostKey) + "\n" + knownhosts.Line([]string{name}, otherKey) + "\n")
	err := createErr(t, loc)
	if !errors.Is(err, ErrHostKeyChanged) || errors.Is(err, ErrUnknownHostKey) {
		t.Errorf("another key of the same type known: %v, want an error matching ErrHostKeyChanged only", err)
	}
	remove := "ssh-keygen -R '" + name + "' -f ~/.ssh/known_hosts"
	mustContain(t, err.Error(), "WARNING", "CHANGED", ssh.FingerprintSHA256(srv.HostKey), "~/.ssh/known_hosts line 3",
		"man-in-the-middle", "remove the old key with: "+remove)

	// Do as the error says (the real ssh-keygen): then the key is merely unknown.
	if out, err := exec.Command("bash", "-c", remove).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", remove, err, out)
	}
	if err := createErr(t, loc); !errors.Is(err, ErrUnknownHostKey) {
		t.Errorf("after ssh-keygen -R: %v, want an error matching ErrUnknownHostKey", err)
	}

	// Only a key of another type known (the server has an ed25519 key only).
	ecdsaKey := parsePubFile(t, ecdsaKeyPath(t))
	write(knownhosts.Line([]string{name}, ecdsaKey) + "\n")
	err = createErr(t, loc)
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Errorf("only a key of another type known: %v, want an error matching ErrHostKeyChanged", err)
	}
	mustContain(t, err.Error(), "WARNING", ecdsaKey.Type())

	// The key shown is revoked.
	write(knownhosts.Line([]string{name}, srv.HostKey) + "\n@revoked * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))) + "\n")
	err = createErr(t, loc)
	if !errors.Is(err, ErrHostKeyChanged) {
		t.Errorf("revoked key: %v, want an error matching ErrHostKeyChanged", err)
	}
	mustContain(t, err.Error(), "revoked", "line 2")

	// Both the changed key and the right one known: the right one is enough, as
	// for ssh.
	write(knownhosts.Line([]string{name}, otherKey) + "\n" + knownhosts.Line([]string{name}, srv.HostKey) + "\n")
	createAt(t, loc)
}

// ecdsaKeyPath makes an ECDSA key with the real ssh-keygen and returns its
// public key file.
func ecdsaKeyPath(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "ecdsa")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return key + ".pub"
}

func parsePubFile(t *testing.T, name string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestWrongKey: keys the server does not accept, or cannot use, give clear errors.
func TestWrongKey(t *testing.T) {
	srv := testserver.SSHD(t)
	srv.Env(t)
	loc := srv.Location(filepath.Join(srv.Dir, "repo"))
	authorized, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}

	wrong, _ := newKeyPEM(t, "")
	if err := os.WriteFile(srv.KeyFile, wrong, 0o600); err != nil {
		t.Fatal(err)
	}
	err = createErr(t, loc)
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("an unauthorised key: %v, want an error matching ErrAuthFailed", err)
	}
	mustContain(t, err.Error(), srv.User+"@"+srv.Addr, "accepted none", "~/.ssh/"+filepath.Base(srv.KeyFile), "authorized_keys")

	if err := os.Remove(srv.KeyFile); err != nil {
		t.Fatal(err)
	}
	err = createErr(t, loc)
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("no key: %v, want an error matching ErrAuthFailed", err)
	}
	mustContain(t, err.Error(), "no usable ssh key", "no identity file", "~/.ssh/id_ed25519")

	if err := os.WriteFile(srv.KeyFile, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = createErr(t, loc)
	mustContain(t, err.Error(), "~/.ssh/"+filepath.Base(srv.KeyFile)+" (not a usable key: ssh: no key found)")

	// The authorised key, but behind a passphrase cairn cannot ask for.
	encrypted := encryptKey(t, authorized, "secret")
	if err := os.WriteFile(srv.KeyFile, encrypted, 0o600); err != nil {
		t.Fatal(err)
	}
	err = createErr(t, loc)
	mustContain(t, err.Error(), "passphrase-protected", "ssh-add")

	// With the key in ssh-agent (the real one), as the error says, it works.
	agentWith(t, srv.KeyFile, "secret")
	createAt(t, loc)

	// IdentitiesOnly: the agent's keys that are not identity files are not
	// offered; without it they are.
	other, _ := newKeyPEM(t, "")
	if err := os.WriteFile(filepath.Join(srv.HomeDir, ".ssh", "other"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(srv.HomeDir, ".ssh", "config")
	writeConfig := func(extra string) {
		text := fmt.Sprintf("Host %s\n    HostName %s\n    Port %d\n    User %s\n    IdentityFile ~/.ssh/other\n%s",
			srv.Alias, srv.Host, srv.Port, srv.User, extra)
		if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig("    IdentitiesOnly yes\n")
	err = createErr(t, loc)
	if !errors.Is(err, ErrAuthFailed) {
		t.Errorf("IdentitiesOnly without the agent's key: %v, want an error matching ErrAuthFailed", err)
	}
	mustContain(t, err.Error(), "~/.ssh/other", "ssh-agent (0 keys)")
	writeConfig("")
	createAt(t, srv.Location(filepath.Join(srv.Dir, "repo2")))

	// IdentityAgent none turns the agent off.
	writeConfig("    IdentityAgent none\n")
	err = createErr(t, srv.Location(filepath.Join(srv.Dir, "repo3")))
	if !errors.Is(err, ErrAuthFailed) || strings.Contains(err.Error(), "ssh-agent") {
		t.Errorf("IdentityAgent none: %v, want an error matching ErrAuthFailed that tried no agent", err)
	}
}

// encryptKey re-encodes an OpenSSH private key with a passphrase.
func encryptKey(t *testing.T, keyPEM []byte, passphrase string) []byte {
	t.Helper()
	raw, err := ssh.ParseRawPrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKeyWithPassphrase(raw, "", []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block)
}

// agentWith starts ssh-agent for the rest of t (SSH_AUTH_SOCK) and adds the key
// in keyFile, encrypted with passphrase, with ssh-add.
func agentWith(t *testing.T, keyFile, passphrase string) {
	t.Helper()
	for _, tool := range []string{"ssh-agent", "ssh-add"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (package openssh-client): .ci/run installs it", tool)
		}
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Process.Kill()
		agent.Wait()
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("ssh-agent made no socket")
		}
		time.Sleep(10 * time.Millisecond)
	}
	askpass := filepath.Join(dir, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+passphrase+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	add := exec.Command("ssh-add", keyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=none")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v\n%s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
}
