// Package s3 is a Storage in a bucket of an S3-compatible object store (Amazon S3,
// MinIO, versitygw, Ceph, ...), through minio-go.
//
// Layout of a repository at s3:ENDPOINT/BUCKET/PREFIX, like the local one's:
//
//	PREFIX/config
//	PREFIX/keys/NAME
//	PREFIX/data/XX/NAME    XX is the first two characters of NAME
//	PREFIX/index/NAME
//	PREFIX/snapshots/NAME
//	PREFIX/locks/NAME
//
// (with an empty prefix the keys start at the type: "config", "data/XX/NAME").
//
// Credentials are found the usual AWS way: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
// and AWS_SESSION_TOKEN; else the shared credentials file (AWS_SHARED_CREDENTIALS_FILE
// or ~/.aws/credentials, profile AWS_PROFILE or "default"); else an IAM role (EC2
// instance metadata, ECS/EKS container credentials, web identity); else none, and
// requests go unsigned. Buckets are addressed path-style (host/bucket/key) on
// every server but Amazon's, where minio-go chooses.
//
// Each file is one object, written by a single PUT that carries its MD5
// (Content-MD5), so the server rejects an upload damaged on the way, and that the
// server stores wholly or not at all. Errors that retrying may cure (connection
// refused or reset, timeouts, 5xx answers) are returned as they are, for
// storage.Wrap to retry; minio-go itself does not retry.
package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"cairn/internal/storage"
)

// connections is how many pack saves should run at once: an object store serves
// many requests in parallel, and each is slowed by the round trip.
const connections = 8

// Storage is a repository in an S3 bucket. Create or Open one; all methods are safe
// for concurrent use, also by several processes.
type Storage struct {
	cfg       Config
	region    string // of the bucket, or "" to ask the server
	client    *minio.Client
	transport *http.Transport
	anonymous bool // no credentials were found

	// unconditional is set once the server has refused a conditional PUT as not
	// implemented; Saves then rely on the Stat before the PUT alone.
	unconditional atomic.Bool
}

var _ storage.Storage = (*Storage)(nil)

// Open opens the repository described by cfg. A missing bucket is an error saying
// "bucket X does not exist at ENDPOINT"; a bucket without a config file at the prefix
// is one saying "no repository at LOCATION"; both match fs.ErrNotExist. Credentials
// the server refuses give an error saying "access denied" that names the variables
// to check.
func Open(ctx context.Context, cfg Config) (*Storage, error) {
	s, err := newStorage(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.checkBucket(ctx); err != nil {
		s.closeIdle()
		return nil, err
	}
	if _, err := s.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); errors.Is(err, fs.ErrNotExist) {
		s.closeIdle()
		return nil, noRepoError(s.Location())
	} else if err != nil {
		s.closeIdle()
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return s, nil
}

// Create prepares a new repository described by cfg: it creates the bucket if it
// does not exist (in cfg's region). It fails with an error matching
// storage.ErrExists if a repository, that is a config file, is already at the
// prefix. The config itself is written later by Save.
func Create(ctx context.Context, cfg Config) (*Storage, error) {
	s, err := newStorage(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.createBucket(ctx); err != nil {
		s.closeIdle()
		return nil, err
	}
	if _, err := s.Stat(ctx, storage.Handle{Type: storage.ConfigFile}); err == nil {
		s.closeIdle()
		return nil, fmt.Errorf("a repository already exists at %s: %w", s.Location(), storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		s.closeIdle()
		return nil, fmt.Errorf("create repository: %w", err)
	}
	return s, nil
}

type noRepoError string

func (e noRepoError) Error() string { return "no repository at " + string(e) }
func (e noRepoError) Unwrap() error { return fs.ErrNotExist }

// newStorage makes the client of cfg and finds its credentials.
func newStorage(ctx context.Context, cfg Config) (*Storage, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("S3 location without endpoint or bucket")
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	region := cfg.Region
	if region == "" {
		region = os.Getenv("AWS_REGION")
	}
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	transport, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, err
	}
	creds, anonymous, err := findCredentials(ctx)
	if err != nil {
		return nil, err
	}
	lookup := minio.BucketLookupPath
	if isAmazon(cfg.Endpoint) {
		lookup = minio.BucketLookupAuto
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       cfg.Secure,
		Transport:    transport,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   1, // storage.Wrap retries; two layers would multiply
	})
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %s: %w", cfg.Endpoint, err)
	}
	return &Storage{cfg: cfg, region: region, client: client, transport: transport, anonymous: anonymous}, nil
}

// findCredentials returns the first credentials of the AWS chain (environment,
// shared credentials file, IAM), or anonymous ones if there are none; anonymous
// reports the latter.
func findCredentials(ctx context.Context) (creds *credentials.Credentials, anonymous bool, err error) {
	chain := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
		// The instance metadata service answers at once where it exists.
		&credentials.IAM{Client: &http.Client{Timeout: 5 * time.Second}},
	})
	v, err := chain.GetWithContext(&credentials.CredContext{Context: ctx})
	if err != nil {
		return nil, false, fmt.Errorf("S3 credentials: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if v.AccessKeyID == "" && v.SecretAccessKey == "" {
		// Asking the chain again on each request would probe IAM each time.
		return credentials.NewStatic("", "", "", credentials.SignatureAnonymous), true, nil
	}
	return chain, false, nil
}

// isAmazon reports whether endpoint (host[:port]) is Amazon's S3.
func isAmazon(endpoint string) bool {
	host := endpoint
	if h, _, err := net.SplitHostPort(endpoint); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	return host == "amazonaws.com" || strings.HasSuffix(host, ".amazonaws.com") || strings.HasSuffix(host, ".amazonaws.com.cn")
}

// checkBucket returns nil if the bucket exists and the credentials may use it.
func (s *Storage) checkBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.bucketError(ctx, err)
	}
	if !ok {
		return fmt.Errorf("bucket %s does not exist at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, fs.ErrNotExist)
	}
	return nil
}

// createBucket creates the bucket unless it exists.
func (s *Storage) createBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.bucketError(ctx, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.region})
	switch minio.ToErrorResponse(err).Code {
	case "":
		if err != nil {
			return s.bucketError(ctx, err)
		}
		return nil
	case "BucketAlreadyOwnedByYou": // made at the same time by someone else
		return nil
	case "BucketAlreadyExists":
		return fmt.Errorf("create bucket %s at %s: the name is taken by another account; choose another bucket", s.cfg.Bucket, s.cfg.Endpoint)
	}
	return fmt.Errorf("create bucket %s at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, s.requestError(ctx, err))
}

func (s *Storage) bucketError(ctx context.Context, err error) error {
	return fmt.Errorf("bucket %s at %s: %w", s.cfg.Bucket, s.cfg.Endpoint, s.requestError(ctx, err))
}

// requestError turns an error of minio-go into one a person can read, one line
// without XML: ctx's error if ctx is done, one matching fs.ErrNotExist for a
// missing object or bucket, an "access denied" naming the credentials to check,
// else the server's code and message or the network error. It keeps err in the
// chain for errors.Is and errors.As.
func (s *Storage) requestError(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	resp := minio.ToErrorResponse(err)
	if resp.Code == "" {
		return err // a network error, or one of minio-go's own
	}
	msg := firstLine(resp.Message)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	desc := fmt.Sprintf("%s (%s, HTTP %d)", msg, resp.Code, resp.StatusCode)
	switch resp.Code {
	case "NoSuchKey":
		return &requestErr{msg: "does not exist", err: err, is: fs.ErrNotExist}
	case "NoSuchBucket":
		return &requestErr{msg: fmt.Sprintf("bucket %s does not exist at %s", s.cfg.Bucket, s.cfg.Endpoint), err: err, is: fs.ErrNotExist}
	case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
		"TokenRefreshRequired", "AllAccessDisabled",
		"XAdminUserNotFound": // versitygw's answer to an unknown access key

		hint := "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE and the shared credentials file) and the bucket's permissions"
		if s.anonymous {
			hint = "no credentials found: set AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or AWS_PROFILE and a shared credentials file"
		}
		return &requestErr{msg: "access denied: " + desc + ": " + hint, err: err}
	}
	return &requestErr{msg: desc, err: err}
}

// requestErr is a failed request: a readable message, minio-go's error and, if not
// nil, the sentinel it matches.
type requestErr struct {
	msg string
	err error
	is  error
}

func (e *requestErr) Error() string { return e.msg }
func (e *requestErr) Unwrap() []error {
	if e.is == nil {
		return []error{e.err}
	}
	return []error{e.err, e.is}
}

// firstLine returns s's first line, at most 200 bytes of it.
func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// key returns the object name of h, which must be valid.
func (s *Storage) key(h storage.Handle) string {
	var k string
	switch h.Type {
	case storage.ConfigFile:
		k = string(h.Type)
	case storage.PackFile:
		k = string(h.Type) + "/" + h.Name[:min(2, len(h.Name))] + "/" + h.Name
	default:
		k = string(h.Type) + "/" + h.Name
	}
	if s.cfg.Prefix == "" {
		return k
	}
	return s.cfg.Prefix + "/" + k
}

// Location implements storage.Storage: s3:http(s)://endpoint/bucket[/prefix].
func (s *Storage) Location() string { return s.cfg.String() }

// Connections says how many pack saves should run at once (see storage.Connections).
func (s *Storage) Connections() int { return connections }

// Save implements storage.Storage. It checks with a HEAD request that h does not
// exist, then PUTs the object with If-None-Match: *, which makes the server refuse
// to replace an object that appeared in between; servers that honour it (Amazon S3,
// MinIO, versitygw) thus let exactly one of racing Saves of a name succeed. On one
// that ignores the header, or refuses it as not implemented (then Save stops
// sending it), two Saves racing between HEAD and PUT may both succeed and the
// later one's content stays: harmless for cairn, whose names are content hashes
// or random.
//
// If ctx is cancelled after the server has received the whole object but before
// its answer arrives, the file may be stored although Save returns ctx's error.
func (s *Storage) Save(ctx context.Context, h storage.Handle, data []byte) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, h); err == nil {
		return fmt.Errorf("save %v: %w", h, storage.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("save %v: %w", h, unwrapOp(err))
	}
	conditional := !s.unconditional.Load()
	err := s.put(ctx, h, data, conditional)
	if conditional && err != nil && isNotImplemented(err) && ctx.Err() == nil {
		s.unconditional.Store(true)
		err = s.put(ctx, h, data, false)
	}
	switch {
	case err == nil:
		return nil
	case minio.ToErrorResponse(err).Code == "PreconditionFailed":
		return fmt.Errorf("save %v: %w", h, storage.ErrExists)
	}
	return fmt.Errorf("save %v: %w", h, s.requestError(ctx, err))
}

// put stores data as h in one PUT with its MD5, if conditional only if h does not exist.
func (s *Storage) put(ctx context.Context, h storage.Handle, data []byte, conditional bool) error {
	opts := minio.PutObjectOptions{
		ContentType: "application/octet-stream",
		// One PUT, never a multipart upload: it is atomic, minio-go sends it from
		// data without copying, and packs are far below the 5 GiB limit of a PUT.
		DisableMultipart: true,
		// Content-MD5 is checked by every S3 server. Without it minio-go would sign
		// the payload in chunks (on http) or add a CRC trailer (on https) that not
		// every server takes.
		SendContentMd5:       true,
		DisableContentSha256: true,
	}
	if conditional {
		opts.SetMatchETagExcept("*")
	}
	_, err := s.client.PutObject(ctx, s.cfg.Bucket, s.key(h), bytes.NewReader(data), int64(len(data)), opts)
	return err
}

// isNotImplemented reports whether the server refused a request for a feature it
// lacks (here: a conditional PUT).
func isNotImplemented(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotImplemented || r.Code == "NotImplemented"
}

// unwrapOp strips the "stat h: " of an error of Stat, to prefix another operation.
func unwrapOp(err error) error {
	var op *opError
	if errors.As(err, &op) {
		return op.err
	}
	return err
}

// opError is an error of one operation on a file: "op h: err".
type opError struct {
	op  string
	h   storage.Handle
	err error
}

func (e *opError) Error() string { return e.op + " " + e.h.String() + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// Load implements storage.Storage with a ranged GET.
func (s *Storage) Load(ctx context.Context, h storage.Handle, offset, length int64) ([]byte, error) {
	if err := h.Valid(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if offset < 0 || length < 0 || length > 0 && offset > math.MaxInt64-length {
		return nil, storage.Invalidf("load %v: invalid range: offset %d length %d", h, offset, length)
	}
	var opts minio.GetObjectOptions
	var rangeErr error
	switch {
	case length > 0:
		rangeErr = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		rangeErr = opts.SetRange(offset, 0) // to the end
	}
	if rangeErr != nil {
		return nil, storage.Invalidf("load %v: %v", h, rangeErr)
	}
	body, _, header, err := minio.Core{Client: s.client}.GetObject(ctx, s.cfg.Bucket, s.key(h), opts)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "InvalidRange" && ctx.Err() == nil {
			// The range starts at or past the end; offset == size is fine with length 0.
			fi, serr := s.Stat(ctx, h)
			if serr != nil {
				return nil, serr
			}
			if length == 0 && offset == fi.Size {
				return []byte{}, nil
			}
			return nil, outsideError(h, offset, length, fi.Size)
		}
		return nil, &opError{"load", h, s.requestError(ctx, err)}
	}
	defer func() { _ = body.Close() }()

	// The size of the object and of the part sent, from Content-Range if the server
	// honoured the range, else the whole object came.
	size, err := strconv.ParseInt(header.Get("Content-Length"), 10, 64)
	if err != nil || size < 0 {
		return nil, &opError{"load", h, fmt.Errorf("invalid Content-Length %q in the answer", header.Get("Content-Length"))}
	}
	skip := int64(0) // bytes of the body before offset
	total := size
	if cr := header.Get("Content-Range"); cr != "" {
		first, last, whole, ok := parseContentRange(cr)
		if !ok || first != offset || last-first+1 != size {
			return nil, &opError{"load", h, fmt.Errorf("answer for range %d-%d has Content-Range %q", offset, offset+length-1, cr)}
		}
		total = whole
	} else {
		skip = offset
	}
	if offset > total || length > total-offset {
		return nil, outsideError(h, offset, length, total)
	}
	if length == 0 {
		length = total - offset
	}
	if skip > 0 {
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return nil, s.readError(ctx, h, err)
		}
	}
	buf := make([]byte, length)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, s.readError(ctx, h, err)
	}
	return buf, nil
}

func (s *Storage) readError(ctx context.Context, h storage.Handle, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		err = cerr
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF // the body ended before its length
	}
	return &opError{"load", h, err}
}

func outsideError(h storage.Handle, offset, length, size int64) error {
	return storage.Invalidf("load %v: offset %d length %d outside file of %d bytes", h, offset, length, size)
}

// parseContentRange parses "bytes FIRST-LAST/SIZE", numbers in plain decimal, of a
// range inside the object.
func parseContentRange(s string) (first, last, size int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, false
	}
	r, sz, ok1 := strings.Cut(rest, "/")
	f, l, ok2 := strings.Cut(r, "-")
	first, ok3 := parseDecimal(f)
	last, ok4 := parseDecimal(l)
	size, ok5 := parseDecimal(sz)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || last < first || size <= last {
		return 0, 0, 0, false
	}
	return first, last, size, true
}

// parseDecimal parses a non-negative int64 written without sign or leading zeros.
func parseDecimal(s string) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// Stat implements storage.Storage with a HEAD request.
func (s *Storage) Stat(ctx context.Context, h storage.Handle) (storage.FileInfo, error) {
	if err := h.Valid(); err != nil {
		return storage.FileInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.FileInfo{}, err
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.key(h), minio.StatObjectOptions{})
	if err != nil {
		return storage.FileInfo{}, &opError{"stat", h, s.requestError(ctx, err)}
	}
	return storage.FileInfo{Name: h.Name, Size: info.Size}, nil
}

// List implements storage.Storage. It skips any object that is not a valid handle of
// type t where this layout puts it.
func (s *Storage) List(ctx context.Context, t storage.FileType, fn func(storage.FileInfo) error) error {
	if err := t.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if t == storage.ConfigFile {
		fi, err := s.Stat(ctx, storage.Handle{Type: t})
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	}
	listCtx, cancel := context.WithCancel(ctx) // stops minio-go's listing goroutine
	defer cancel()
	dir := string(t) + "/"
	if s.cfg.Prefix != "" {
		dir = s.cfg.Prefix + "/" + dir
	}
	objects := s.client.ListObjects(listCtx, s.cfg.Bucket, minio.ListObjectsOptions{
		Prefix:    dir,
		Recursive: t == storage.PackFile, // data/XX/NAME
	})
	for obj := range objects {
		if obj.Err != nil {
			return fmt.Errorf("list %s: %w", t, s.requestError(ctx, obj.Err))
		}
		name := strings.TrimPrefix(obj.Key, dir)
		if t == storage.PackFile {
			sub, n, ok := strings.Cut(name, "/")
			if !ok || sub != n[:min(2, len(n))] {
				continue
			}
			name = n
		}
		if (storage.Handle{Type: t, Name: name}).Valid() != nil {
			continue
		}
		if err := fn(storage.FileInfo{Name: name, Size: obj.Size}); err != nil {
			return err
		}
	}
	// minio-go closes the channel without an error when ctx is done.
	return ctx.Err()
}

// Remove implements storage.Storage. S3 deletes a missing object without
// complaint, so Remove stats it first; two racing Removes may both succeed.
func (s *Storage) Remove(ctx context.Context, h storage.Handle) error {
	if err := h.Valid(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, h); err != nil {
		return &opError{"remove", h, unwrapOp(err)}
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.key(h), minio.RemoveObjectOptions{}); err != nil {
		return &opError{"remove", h, s.requestError(ctx, err)}
	}
	return nil
}

// Close implements storage.Storage: it closes idle connections.
func (s *Storage) Close() error {
	s.closeIdle()
	return nil
}

func (s *Storage) closeIdle() { s.transport.CloseIdleConnections() }
