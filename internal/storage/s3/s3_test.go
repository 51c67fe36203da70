package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"cairn/internal/storage"
	"cairn/internal/storage/storagetest"
	"cairn/internal/testserver"
)

// clearAWSEnv empties every variable that could give credentials or a region, for
// the rest of t, so that a test sees only what it sets.
func clearAWSEnv(t *testing.T) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for _, v := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
	} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_CONFIG_FILE", none)
}

// testConfig returns the Config of prefix in bucket on srv.
func testConfig(t *testing.T, srv *testserver.S3Server, bucket, prefix string) Config {
	t.Helper()
	cfg, err := ParseLocation(srv.Location(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// create returns a new repository storage at prefix in bucket on srv.
func create(t *testing.T, cfg Config) *Storage {
	t.Helper()
	s, err := Create(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Create(%v): %v", cfg, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// checkMessage fails t unless err is one line without XML that contains each of want.
func checkMessage(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one saying %q", want)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "<>\n") {
		t.Errorf("error %q is not one line without XML", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
}

// retryable reports whether storage.Wrap would retry err.
func retryable(err error) bool {
	return err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, storage.ErrExists) &&
		!errors.Is(err, storage.ErrInvalid) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// keys lists every object of bucket on srv, sorted.
func keys(t *testing.T, srv *testserver.S3Server, bucket string) []string {
	t.Helper()
	var ks []string
	for obj := range srv.Client(t).ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatalf("list bucket %s: %v", bucket, obj.Err)
		}
		ks = append(ks, obj.Key)
	}
	sort.Strings(ks)
	return ks
}

func TestConformance(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	shared := srv.NewBucket(t)
	n := 0
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		// Alternately a fresh bucket's top, and a fresh prefix in a shared bucket.
		n++
		if n%2 == 0 {
			return create(t, testConfig(t, srv, srv.NewBucket(t), ""))
		}
		return create(t, testConfig(t, srv, shared, "repos/"+storagetest.RandomName()[:12]))
	})
}

func TestLayout(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	bucket := srv.NewBucket(t)
	ctx := context.Background()
	for _, prefix := range []string{"", "a/b"} {
		s := create(t, testConfig(t, srv, bucket, prefix))
		if got, want := s.Location(), srv.Location(bucket, prefix); got != want {
			t.Errorf("Location() = %q, want %q", got, want)
		}
		if got := storage.Connections(s); got != 8 {
			t.Errorf("Connections = %d, want 8", got)
		}
		var want []string
		for _, h := range []storage.Handle{
			{Type: storage.ConfigFile},
			{Type: storage.KeyFile, Name: "k1"},
			{Type: storage.PackFile, Name: "ab12cd"},
			{Type: storage.PackFile, Name: "x"},
			{Type: storage.IndexFile, Name: "i1"},
			{Type: storage.SnapshotFile, Name: "s1"},
			{Type: storage.LockFile, Name: "l1"},
		} {
			if err := s.Save(ctx, h, []byte(h.String())); err != nil {
				t.Fatal(err)
			}
			key := h.String()
			if h.Type == storage.PackFile {
				key = "data/" + h.Name[:min(2, len(h.Name))] + "/" + h.Name
			}
			if prefix != "" {
				key = prefix + "/" + key
			}
			want = append(want, key)
		}
		sort.Strings(want)
		var got []string // the objects of this repository
		for _, k := range keys(t, srv, bucket) {
			if prefix == "" && !strings.HasPrefix(k, "a/") || prefix != "" && strings.HasPrefix(k, prefix+"/") {
				got = append(got, k)
			}
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("prefix %q: objects %q, want %q", prefix, got, want)
		}
	}
}

// TestListSkipsForeignObjects puts objects into the repository's folders that this
// layout never makes; List must not show them.
func TestListSkipsForeignObjects(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	bucket := srv.NewBucket(t)
	s := create(t, testConfig(t, srv, bucket, "repo"))
	ctx := context.Background()
	good := storage.Handle{Type: storage.PackFile, Name: "abcdef"}
	if err := s.Save(ctx, good, []byte("x")); err != nil {
		t.Fatal(err)
	}
	c := srv.Client(t)
	for _, key := range []string{
		"repo/data/cd/abcd",     // in the wrong subfolder
		"repo/data/abcd",        // not in a subfolder
		"repo/data/ab/cd/abcd",  // too deep
		"repo/data/ab/ab.tmp",   // not a valid name
		"repo/index/sub/abcd",   // too deep
		"repo/index/bad name",   // not a valid name
		"repo2/data/ab/abcdef",  // another prefix
		"repo-x/index/abcdefgh", // another prefix that starts alike
	} {
		if _, err := c.PutObject(ctx, bucket, key, strings.NewReader("y"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	for _, ft := range []storage.FileType{storage.PackFile, storage.IndexFile} {
		var got []string
		err := s.List(ctx, ft, func(fi storage.FileInfo) error {
			got = append(got, fi.Name)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if ft == storage.PackFile {
			want = good.Name
		}
		if strings.Join(got, " ") != want {
			t.Errorf("List(%s) = %q, want %q", ft, got, want)
		}
	}
}

// TestConditionalPut shows that versitygw honours If-None-Match: * on PUT, which Save
// relies on: without the Stat that Save makes first, a PUT of an existing name fails
// and racing PUTs of one name store exactly one.
func TestConditionalPut(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	s := create(t, testConfig(t, srv, srv.NewBucket(t), "repo"))
	ctx := context.Background()

	h := storage.Handle{Type: storage.LockFile, Name: storagetest.RandomName()}
	if err := s.put(ctx, h, []byte("first"), true); err != nil {
		t.Fatal(err)
	}
	err := s.put(ctx, h, []byte("second"), true)
	if code := minio.ToErrorResponse(err).Code; code != "PreconditionFailed" {
		t.Fatalf("conditional PUT of an existing object: error %v (code %q), want PreconditionFailed", err, code)
	}
	if got, err := s.Load(ctx, h, 0, 0); err != nil || string(got) != "first" {
		t.Errorf("after a refused PUT the object is %q, %v", got, err)
	}
	if s.unconditional.Load() {
		t.Error("Save stopped sending If-None-Match")
	}

	for round := 0; round < 3; round++ {
		h := storage.Handle{Type: storage.PackFile, Name: storagetest.RandomName()}
		const n = 12
		errs := make([]error, n)
		datas := make([][]byte, n)
		var wg sync.WaitGroup
		for i := range errs {
			datas[i] = storagetest.RandomData(256<<10 + i)
			wg.Go(func() { errs[i] = s.put(ctx, h, datas[i], true) })
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("round %d: PUTs %d and %d of one name both succeeded", round, winner, i)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no PUT succeeded: %v", round, errs)
		}
		if got, err := s.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, datas[winner]) {
			t.Errorf("round %d: the stored object is not the winner's (%v)", round, err)
		}
	}
}

func TestOpenAndCreate(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)

	missing := "cairn-missing-" + strings.ToLower(storagetest.RandomName()[:10])
	cfg := testConfig(t, srv, missing, "repo")
	_, err := Open(ctx, cfg)
	checkMessage(t, err, "bucket "+missing+" does not exist at "+cfg.Endpoint)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing bucket: %v does not match fs.ErrNotExist", err)
	}

	_, err = Open(ctx, testConfig(t, srv, bucket, "none"))
	checkMessage(t, err, "no repository at "+srv.Location(bucket, "none"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a prefix without config: %v does not match fs.ErrNotExist", err)
	}

	// Create makes the missing bucket.
	s := create(t, cfg)
	if ok, err := srv.Client(t).BucketExists(ctx, missing); err != nil || !ok {
		t.Fatalf("Create did not make bucket %s: %v, %v", missing, ok, err)
	}
	t.Cleanup(func() {
		srv.Client(t).RemoveObject(ctx, missing, "repo/config", minio.RemoveObjectOptions{})
		srv.Client(t).RemoveBucket(ctx, missing)
	})
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}
	o, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open after Create and Save of the config: %v", err)
	}
	if b, err := o.Load(ctx, storage.Handle{Type: storage.ConfigFile}, 0, 0); err != nil || string(b) != "cfg" {
		t.Errorf("Load(config) = %q, %v", b, err)
	}
	o.Close()
	_, err = Create(ctx, cfg)
	checkMessage(t, err, "a repository already exists at "+cfg.String())
	if !errors.Is(err, storage.ErrExists) {
		t.Errorf("Create over a repository: %v does not match ErrExists", err)
	}
	// Another prefix of the same bucket is free, and Create leaves the bucket as it is.
	create(t, testConfig(t, srv, missing, "other"))
}

func TestWrongCredentials(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	cfg := testConfig(t, srv, bucket, "repo")

	for _, tt := range []struct{ name, access, secret string }{
		{"wrong secret", srv.Access, "not-the-secret"},
		{"unknown key", "nobody", srv.Secret},
	} {
		t.Setenv("AWS_ACCESS_KEY_ID", tt.access)
		t.Setenv("AWS_SECRET_ACCESS_KEY", tt.secret)
		_, err := Open(ctx, cfg)
		checkMessage(t, err, "access denied", "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", bucket)
		_, err = Create(ctx, cfg)
		checkMessage(t, err, "access denied", "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
		if t.Failed() {
			t.Fatalf("with the %s", tt.name)
		}
	}

	// With no credentials at all (and no IAM role: the container endpoint refuses)
	// the error says that none were found.
	noRole := httptest.NewServer(http.NotFoundHandler())
	defer noRole.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", noRole.URL+"/creds")
	_, err := Open(ctx, cfg)
	checkMessage(t, err, "access denied", "no credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY")
}

// writeCredentials writes a shared credentials file whose profile "default" has a
// wrong secret and profile "cairn" the right one, and points
// AWS_SHARED_CREDENTIALS_FILE at it.
func writeCredentials(t *testing.T, srv *testserver.S3Server) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "credentials")
	content := "[default]\naws_access_key_id = " + srv.Access + "\naws_secret_access_key = wrong\n\n" +
		"[cairn]\naws_access_key_id = " + srv.Access + "\naws_secret_access_key = " + srv.Secret + "\n"
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
}

func TestCredentialsFromSharedFile(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	cfg := testConfig(t, srv, bucket, "repo")
	writeCredentials(t, srv)

	t.Setenv("AWS_PROFILE", "cairn")
	s := create(t, cfg)
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatalf("Save with credentials of profile cairn: %v", err)
	}
	o, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open with credentials of profile cairn: %v", err)
	}
	o.Close()

	t.Setenv("AWS_PROFILE", "") // "default", whose secret is wrong
	_, err = Open(ctx, cfg)
	checkMessage(t, err, "access denied")

	// The environment comes before the file.
	srv.Env(t)
	o, err = Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open with credentials in the environment and a wrong default profile: %v", err)
	}
	o.Close()
}

// TestCredentialsFromContainerRole serves the credentials the way ECS and EKS give
// a container its IAM role, the last link of the chain.
func TestCredentialsFromContainerRole(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	ctx := context.Background()
	var asked atomic.Int32
	role := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		json.NewEncoder(w).Encode(map[string]any{
			"AccessKeyId":     srv.Access,
			"SecretAccessKey": srv.Secret,
			"Expiration":      time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		})
	}))
	defer role.Close()
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", role.URL+"/v2/credentials")

	s := create(t, testConfig(t, srv, srv.NewBucket(t), "repo"))
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatalf("Save with the container role's credentials: %v", err)
	}
	if asked.Load() == 0 {
		t.Error("the container credentials endpoint was never asked")
	}
}

// TestServerKilledDuringSave kills the server while a pack is being uploaded: the
// Save fails with an error storage.Wrap retries, nothing of the file is visible once
// the server is back, and the same Storage then saves it.
func TestServerKilledDuringSave(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3Private(t)
	srv.Env(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)

	var armed atomic.Bool
	var sent atomic.Int64
	var once sync.Once
	killed := make(chan struct{})
	proxy := startProxy(t, strings.TrimPrefix(srv.Endpoint, "http://"), func(p []byte) {
		if armed.Load() && sent.Add(int64(len(p))) > 4<<20 {
			once.Do(func() {
				srv.Stop(t)
				close(killed)
			})
		}
	})
	s := create(t, Config{Endpoint: proxy.Addr, Bucket: bucket, Prefix: "repo"})
	if err := s.Save(ctx, storage.Handle{Type: storage.ConfigFile}, []byte("cfg")); err != nil {
		t.Fatal(err)
	}

	h := storage.Handle{Type: storage.PackFile, Name: storagetest.RandomName()}
	data := storagetest.RandomData(16 << 20)
	armed.Store(true)
	err := s.Save(ctx, h, data)
	armed.Store(false)
	select {
	case <-killed:
	default:
		t.Fatalf("the server was not killed during the Save (Save: %v)", err)
	}
	if err == nil {
		t.Fatal("Save succeeded although the server was killed during the upload")
	}
	if !retryable(err) {
		t.Errorf("Save's error %q is one that storage.Wrap would not retry", err)
	}
	t.Logf("Save while the server died: %v", err)

	srv.Restart(t)
	if _, err := s.Stat(ctx, h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the restart Stat of the interrupted file: %v, want ErrNotExist", err)
	}
	if got := keys(t, srv, bucket); strings.Join(got, " ") != "repo/config" {
		t.Errorf("after the restart the bucket holds %q, want only repo/config", got)
	}
	if err := s.Save(ctx, h, data); err != nil {
		t.Fatalf("Save after the restart: %v", err)
	}
	if got, err := s.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Load after the restart: %d bytes, %v", len(got), err)
	}
}

// TestRetryWhileServerDown saves through storage.Wrap while the server is down; the
// retries succeed once it is back.
func TestRetryWhileServerDown(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3Private(t)
	srv.Env(t)
	ctx := context.Background()
	s := create(t, testConfig(t, srv, srv.NewBucket(t), "repo"))
	srv.Stop(t)

	h := storage.Handle{Type: storage.IndexFile, Name: storagetest.RandomName()}
	_, err := s.Stat(ctx, h)
	if !retryable(err) {
		t.Fatalf("Stat while the server is down: %v, want an error storage.Wrap retries", err)
	}
	var retries []error
	w := storage.Wrap(s, storage.WrapOptions{
		BaseDelay: 10 * time.Millisecond,
		OnRetry: func(op string, err error, wait time.Duration) {
			retries = append(retries, err)
			if len(retries) == 2 {
				srv.Restart(t)
			}
		},
	})
	data := storagetest.RandomData(100 << 10)
	if err := w.Save(ctx, h, data); err != nil {
		t.Fatalf("Save through Wrap: %v (after retries %v)", err, retries)
	}
	if len(retries) < 2 {
		t.Errorf("Save succeeded after %d retries while the server was down", len(retries))
	}
	if got, err := w.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Load: %d bytes, %v", len(got), err)
	}
}

// TestCorruptedUploadRejected changes one byte of an upload on its way to the
// server: the server must refuse it by its Content-MD5 and store nothing.
func TestCorruptedUploadRejected(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	ctx := context.Background()
	bucket := srv.NewBucket(t)
	target := strings.TrimPrefix(strings.TrimPrefix(srv.Endpoint, "http://"), "https://")
	if strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatal("this test's proxy needs an http server")
	}

	// The data holds one 0xff byte, which HTTP headers never do; the proxy changes
	// the first 0xff it sees after being armed.
	data := storagetest.RandomData(1 << 20)
	for i := range data {
		if data[i] == 0xff {
			data[i] = 0xfe
		}
	}
	data[700<<10] = 0xff
	var armed, changed atomic.Bool
	proxy := startProxy(t, target, func(p []byte) {
		if !armed.Load() {
			return
		}
		if i := bytes.IndexByte(p, 0xff); i >= 0 && changed.CompareAndSwap(false, true) {
			p[i] = 0
		}
	})
	s := create(t, Config{Endpoint: proxy.Addr, Bucket: bucket, Prefix: "repo"})
	h := storage.Handle{Type: storage.PackFile, Name: storagetest.RandomName()}
	armed.Store(true)
	err := s.Save(ctx, h, data)
	armed.Store(false)
	if !changed.Load() {
		t.Fatalf("the proxy did not change the upload (Save: %v)", err)
	}
	if err == nil {
		t.Fatal("the server took an upload damaged on its way")
	}
	checkMessage(t, err, "save "+h.String())
	t.Logf("Save of a damaged upload: %v", err)
	if _, err := s.Stat(ctx, h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after the refused upload: %v, want ErrNotExist", err)
	}
	if err := s.Save(ctx, h, data); err != nil {
		t.Fatalf("Save of the same data undamaged: %v", err)
	}
	if got, err := s.Load(ctx, h, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Load: %d bytes, %v", len(got), err)
	}
}

// TestCancelDuringSave cancels a Save in the middle of its upload: it fails with
// context.Canceled and nothing of the file is stored.
func TestCancelDuringSave(t *testing.T) {
	clearAWSEnv(t)
	srv := testserver.S3(t)
	srv.Env(t)
	if strings.HasPrefix(srv.Endpoint, "https://") {
		t.Fatal("this test's proxy needs an http server")
	}
	bucket := srv.NewBucket(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var armed atomic.Bool
	var sent atomic.Int64
	proxy := startProxy(t, strings.TrimPrefix(srv.Endpoint, "http://"), func(p []byte) {
		if armed.Load() && sent.Add(int64(len(p))) > 2<<20 {
			cancel()
		}
	})
	s := create(t, Config{Endpoint: proxy.Addr, Bucket: bucket, Prefix: "repo"})
	h := storage.Handle{Type: storage.PackFile, Name: storagetest.RandomName()}
	armed.Store(true)
	err := s.Save(ctx, h, storagetest.RandomData(12<<20))
	if ctx.Err() == nil {
		t.Fatalf("the Save ended before the proxy cancelled it (Save: %v)", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Save cancelled during the upload: error %v, want context.Canceled", err)
	}
	if _, err := s.Stat(context.Background(), h); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat after the cancelled Save: %v, want ErrNotExist", err)
	}
	if got := keys(t, srv, bucket); len(got) != 0 {
		t.Errorf("after the cancelled Save the bucket holds %q", got)
	}
}
