package s3

import (
	"fmt"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want Config
	}{
		{"s3:http://127.0.0.1:9000/bucket", Config{Endpoint: "127.0.0.1:9000", Bucket: "bucket"}},
		{"s3:https://s3.amazonaws.com/my-bucket/some/prefix", Config{Endpoint: "s3.amazonaws.com", Secure: true, Bucket: "my-bucket", Prefix: "some/prefix"}},
		{"s3:http://minio.local/bucket/prefix/", Config{Endpoint: "minio.local", Bucket: "bucket", Prefix: "prefix"}},
		{"s3:http://minio.local/bucket/", Config{Endpoint: "minio.local", Bucket: "bucket"}},
		{"s3:s3.example.com/bucket/repo", Config{Endpoint: "s3.example.com", Secure: true, Bucket: "bucket", Prefix: "repo"}},
		{"s3:minio:9000/bucket", Config{Endpoint: "minio:9000", Secure: true, Bucket: "bucket"}},
		{"s3:http://[::1]:9000/bucket/p", Config{Endpoint: "[::1]:9000", Bucket: "bucket", Prefix: "p"}},
		{"s3:https://host/b.u-c.k.e.t/a b/C_d:e", Config{Endpoint: "host", Secure: true, Bucket: "b.u-c.k.e.t", Prefix: "a b/C_d:e"}},
	} {
		got, err := ParseLocation(tt.spec)
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseLocation(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
	}
}

func TestParseLocationErrors(t *testing.T) {
	for _, tt := range []struct{ spec, want string }{
		{"", `does not start with "s3:"`},
		{"http://host/bucket", `does not start with "s3:"`},
		{"s3:", "no host"},
		{"s3:http://host", "no bucket"},
		{"s3:http://host/", "no bucket"},
		{"s3:host", "no bucket"},
		{"s3:/bucket", "no host"},
		{"s3:http:///bucket", "no host"},
		{"s3:ftp://host/bucket", "scheme must be http or https"},
		{"s3://bucket/prefix", "scheme must be http or https"},
		{"s3:http://user:pw@host/bucket", "credentials do not belong in the location"},
		{"s3:user@host/bucket", "@ is not allowed"},
		{"s3:http://host/bucket?versionId=1", "query"},
		{"s3:http://host/bucket#frag", "fragment"},
		{"s3:http://host/Bad_Bucket", `bucket name "Bad_Bucket"`},
		{"s3:http://host/bu", `bucket name "bu"`},
		{"s3:http://host:99999/bucket", "invalid port"},
		{"s3:http://host:abc/bucket", "invalid port"},
		{"s3:host:/bucket", "invalid port"},
		{"s3:::1/bucket", "IPv6 address not in brackets"},
		{"s3:[zz]/bucket", "invalid IPv6 address"},
		{"s3:ho$t/bucket", `invalid character '$'`},
		{"s3:host/bucket/a//b", "empty folder name"},
		{"s3:host/bucket/../x", `".." folder`},
		{"s3:host/bucket/a/./b", `"." folder`},
		{"s3:http://host/bucket/a%20b", "escapes (%) are not allowed"},
		{"s3:host/bucket/a\tb", "control character"},
		{"s3:host/bucket/a\\b", "backslash"},
		{"s3:host/bucket/\xff", "UTF-8"},
	} {
		_, err := ParseLocation(tt.spec)
		if err == nil {
			t.Errorf("ParseLocation(%q) succeeded, want an error saying %q", tt.spec, tt.want)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "want s3:https://host[:port]/bucket[/prefix]") || strings.Contains(msg, "\n") {
			t.Errorf("ParseLocation(%q): error %q, want one line saying %q and the form", tt.spec, msg, tt.want)
		}
	}
}

// FuzzParseLocation checks that ParseLocation never panics, and that what it accepts
// is a valid location that it reads back from Config.String unchanged.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"s3:http://127.0.0.1:9000/bucket", "s3:https://s3.amazonaws.com/my-bucket/some/prefix/",
		"s3:host/bucket/repo", "s3:http://[::1]:9000/bucket/p", "s3://bucket", "s3:http://u@h/b",
		"s3:http://host/bucket/a%2Fb", "s3:host:1/bucket/a b", "s3:[fe80::1%25eth0]/bucket",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		cfg, err := ParseLocation(spec)
		if err != nil {
			if cfg != (Config{}) {
				t.Errorf("ParseLocation(%q) failed but returned %+v", spec, cfg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("ParseLocation(%q): error of several lines: %q", spec, err)
			}
			return
		}
		if cfg.Endpoint == "" || s3utils.CheckValidBucketNameStrict(cfg.Bucket) != nil {
			t.Errorf("ParseLocation(%q) = %+v: no endpoint, or an invalid bucket", spec, cfg)
		}
		if strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/") || strings.Contains(cfg.Prefix, "//") {
			t.Errorf("ParseLocation(%q) = %+v: prefix with a leading, trailing or double slash", spec, cfg)
		}
		again, err := ParseLocation(cfg.String())
		if err != nil || again != cfg {
			t.Errorf("ParseLocation(%q) = %+v, whose String %q parses as %+v, %v", spec, cfg, cfg.String(), again, err)
		}
	})
}

// FuzzParseContentRange checks the parser of servers' Content-Range headers: no
// panic, and what it accepts is a range inside the object that formats back the same.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-5/6", "bytes 0-0/0", "bytes */100", "bytes 1-2/x", "bytes -1--1/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		first, last, size, ok := parseContentRange(s)
		if !ok {
			return
		}
		if first < 0 || last < first || size <= last {
			t.Errorf("parseContentRange(%q) = %d, %d, %d: not a range inside the object", s, first, last, size)
		}
		if canon := fmt.Sprintf("bytes %d-%d/%d", first, last, size); canon != s {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, which formats as %q", s, first, last, size, canon)
		}
	})
}
