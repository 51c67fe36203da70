package testserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is an S3-compatible server (versitygw) on loopback that tests store
// into. Its fields are read-only.
type S3Server struct {
	// Endpoint is the server's URL, such as http://127.0.0.1:40123.
	Endpoint string
	// Access and Secret are the credentials of its root user.
	Access, Secret string

	shared bool // named by CAIRN_TEST_S3_* and shared with other tests

	mu   sync.Mutex
	addr string    // 127.0.0.1:PORT
	root string    // the posix folder holding the buckets
	log  string    // file that collects versitygw's output
	cmd  *exec.Cmd // nil while stopped
	done chan struct{}
}

// S3 returns a running S3 server for t: the one named by the environment variables
// CAIRN_TEST_S3_ENDPOINT, CAIRN_TEST_S3_ACCESS and CAIRN_TEST_S3_SECRET if they are
// set (scripts/test-servers starts one), else a versitygw of t's own, stopped when t
// ends. Tests share a server, so each should store into a NewBucket of its own.
func S3(t testing.TB) *S3Server {
	t.Helper()
	endpoint := os.Getenv("CAIRN_TEST_S3_ENDPOINT")
	if endpoint == "" {
		return S3Private(t)
	}
	s := &S3Server{
		Endpoint: strings.TrimSuffix(endpoint, "/"),
		Access:   os.Getenv("CAIRN_TEST_S3_ACCESS"),
		Secret:   os.Getenv("CAIRN_TEST_S3_SECRET"),
		shared:   true,
	}
	if s.Access == "" || s.Secret == "" {
		t.Fatal("CAIRN_TEST_S3_ENDPOINT is set but CAIRN_TEST_S3_ACCESS or CAIRN_TEST_S3_SECRET is not")
	}
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		t.Fatalf("CAIRN_TEST_S3_ENDPOINT=%q is not an http(s)://host:port URL", endpoint)
	}
	s.addr = u.Host
	return s
}

// S3Private starts a versitygw of t's own on a free loopback port, serving a folder
// in t.TempDir(), and stops it when t ends. Unlike S3's server it may be stopped and
// restarted. A missing versitygw binary fails t.
func S3Private(t testing.TB) *S3Server {
	t.Helper()
	bin := versitygwPath(t)
	dir := t.TempDir()
	s := &S3Server{
		Access: "cairntest",
		Secret: randomHex(16),
		root:   filepath.Join(dir, "root"),
		log:    filepath.Join(dir, "versitygw.log"),
	}
	if err := os.Mkdir(s.root, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop() })
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.addr, err = freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.Endpoint = "http://" + s.addr
		if err = s.start(bin); err == nil {
			return s
		}
		// Another process may have taken the port between freePort and the start.
	}
	t.Fatalf("start versitygw: %v", err)
	return nil
}

// versitygwPath finds versitygw on PATH or in GOPATH/bin, or fails t.
func versitygwPath(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, gopath := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(gopath, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	t.Fatal("versitygw (the S3 test server) is not on PATH nor in $(go env GOPATH)/bin: run .ci/run to install the test tools")
	return ""
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start runs versitygw on s.addr and waits until it answers HTTP requests.
func (s *S3Server) start(bin string) error {
	logFile, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "--port", s.addr, "--access", s.Access, "--secret", s.Secret,
		"--quiet", "posix", s.root)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait() // killed: the status says so
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			s.mu.Lock()
			s.cmd = nil
			s.mu.Unlock()
			return fmt.Errorf("versitygw exited at start: %s", s.logTail())
		default:
		}
		// Any HTTP answer, even "access denied" to this unsigned request, means it serves.
		if resp, err := client.Get(s.Endpoint + "/"); err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("versitygw did not answer on %s within 30s: %s", s.addr, s.logTail())
}

// logTail returns the end of versitygw's output, for error messages.
func (s *S3Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	msg := strings.TrimSpace(string(b))
	if len(msg) > 2000 {
		msg = "..." + msg[len(msg)-2000:]
	}
	if msg == "" {
		return "(no output)"
	}
	return msg
}

// stop kills the server, if running, and waits for it to exit.
func (s *S3Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill() // fails only if it has exited already
	<-done
}

// Stop kills the server at once (SIGKILL), as a crash would, and waits until it has
// exited; requests in flight fail. Only a server from S3Private can be stopped.
func (s *S3Server) Stop(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("Stop of a shared S3 test server: use S3Private")
	}
	s.stop()
}

// Restart starts a stopped server again on the same port with the same buckets and
// credentials (or, if it is running, kills it first).
func (s *S3Server) Restart(t testing.TB) {
	t.Helper()
	if s.shared {
		t.Fatal("Restart of a shared S3 test server: use S3Private")
	}
	s.stop()
	if err := s.start(versitygwPath(t)); err != nil {
		t.Fatalf("restart versitygw: %v", err)
	}
}

// Client returns a minio-go client of the server with its root credentials.
func (s *S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	u, err := url.Parse(s.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.Access, s.Secret, ""),
		Secure:       u.Scheme == "https",
		BucketLookup: minio.BucketLookupPath,
		Region:       "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewBucket creates a bucket with a fresh random name and returns the name. On a
// shared server the bucket and its objects are removed when t ends.
func (s *S3Server) NewBucket(t testing.TB) string {
	t.Helper()
	c := s.Client(t)
	name := "cairn-test-" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("create bucket %s on %s: %v", name, s.Endpoint, err)
	}
	if s.shared {
		t.Cleanup(func() {
			if err := removeBucket(c, name); err != nil {
				t.Logf("remove test bucket %s: %v", name, err)
			}
		})
	}
	return name
}

// removeBucket deletes every object of bucket, then bucket.
func removeBucket(c *minio.Client, bucket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objects := c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for res := range c.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{}) {
		if res.Err != nil {
			return res.Err
		}
	}
	return c.RemoveBucket(ctx, bucket)
}

// Location returns the repository location of prefix in bucket on this server, as
// cairn's --repo takes it: s3:http://127.0.0.1:PORT/bucket/prefix (no /prefix if
// prefix is empty).
func (s *S3Server) Location(bucket, prefix string) string {
	loc := "s3:" + s.Endpoint + "/" + bucket
	if p := strings.Trim(prefix, "/"); p != "" {
		loc += "/" + p
	}
	return loc
}

// Env sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to the server's credentials
// for the rest of t (t.Setenv), and clears AWS_SESSION_TOKEN and AWS_PROFILE.
func (s *S3Server) Env(t testing.TB) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", s.Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.Secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
}
