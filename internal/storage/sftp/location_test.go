package sftp

import (
	"strings"
	"testing"
	"unicode"
)

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		spec string
		want Config
		str  string // String() of the result, if not spec
	}{
		{spec: "sftp:user@host:/srv/repo", want: Config{User: "user", Host: "host", Path: "/srv/repo"}},
		{spec: "sftp:host:repo", want: Config{Host: "host", Path: "repo"}},
		{spec: "sftp:host:backups/repo/", want: Config{Host: "host", Path: "backups/repo"}, str: "sftp:host:backups/repo"},
		{spec: "sftp:host:~/repo", want: Config{Host: "host", Path: "repo"}, str: "sftp:host:repo"},
		{spec: "sftp:host:~", want: Config{Host: "host", Path: "."}, str: "sftp:host:."},
		{spec: "sftp:host:.", want: Config{Host: "host", Path: "."}},
		{spec: "sftp:my-alias:/a//b/../c", want: Config{Host: "my-alias", Path: "/a/c"}, str: "sftp:my-alias:/a/c"},
		{spec: "sftp:u@10.0.0.1:/r", want: Config{User: "u", Host: "10.0.0.1", Path: "/r"}},
		{spec: "sftp:u@[::1]:/r", want: Config{User: "u", Host: "::1", Path: "/r"}},
		{spec: "sftp:host:/with space/and:colon", want: Config{Host: "host", Path: "/with space/and:colon"}},
		{spec: "sftp:host:a@b", want: Config{Host: "host", Path: "a@b"}},
		{spec: "sftp:host:./~odd", want: Config{Host: "host", Path: "~odd"}},
		{spec: "sftp://user@host:2222/srv/repo", want: Config{User: "user", Host: "host", Port: 2222, Path: "/srv/repo"}},
		{spec: "sftp://host/srv/repo", want: Config{Host: "host", Path: "/srv/repo"}, str: "sftp:host:/srv/repo"},
		{spec: "sftp://host//srv/repo", want: Config{Host: "host", Path: "/srv/repo"}, str: "sftp:host:/srv/repo"},
		{spec: "sftp://host:22/~/repo", want: Config{Host: "host", Port: 22, Path: "repo"}},
		{spec: "sftp://host/~", want: Config{Host: "host", Path: "."}, str: "sftp:host:."},
		{spec: "sftp://u@[::1]:2022/r", want: Config{User: "u", Host: "::1", Port: 2022, Path: "/r"}},
		{spec: "sftp://u@[::1]/r", want: Config{User: "u", Host: "::1", Path: "/r"}, str: "sftp:u@[::1]:/r"},
		{spec: "sftp://host:2222/with%20space", want: Config{Host: "host", Port: 2222, Path: "/with space"}},
		{spec: "sftp://host:2222//~odd", want: Config{Host: "host", Port: 2222, Path: "/~odd"}},
	} {
		got, err := ParseLocation(tt.spec)
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseLocation(%q) = %+v, want %+v", tt.spec, got, tt.want)
		}
		str := tt.str
		if str == "" {
			str = tt.spec
		}
		if got.String() != str {
			t.Errorf("ParseLocation(%q).String() = %q, want %q", tt.spec, got.String(), str)
		}
	}
}

func TestParseLocationErrors(t *testing.T) {
	for _, tt := range []struct{ spec, says string }{
		{"", "not an sftp location"},
		{"/srv/repo", "not an sftp location"},
		{"s3:http://host/bucket", "not an sftp location"},
		{"SFTP:host:/r", "not an sftp location"},
		{"sftp:host", "missing ':'"},
		{"sftp:user@host", "missing ':'"},
		{"sftp:host:", "no path"},
		{"sftp::/r", "no host"},
		{"sftp:@host:/r", "empty user"},
		{"sftp:a@b@c:/r", "contains '@'"},
		{"sftp:-oProxyCommand=x:/r", "starts with '-'"},
		{"sftp:ho st:/r", "contains ' '"},
		{"sftp:host:~bob/r", "~user"},
		{"sftp:[::1:/r", "missing ']'"},
		{"sftp:[::1]/r", "missing ':'"},
		{"sftp:[host]:/r", "not an IPv6"},
		{"sftp:host:/a\x00b", "NUL"},
		{"sftp://", "no host"},
		{"sftp:///r", "no host"},
		{"sftp://host", "no path"},
		{"sftp://host/", "no path"},
		{"sftp://host:0/r", "port"},
		{"sftp://host:65536/r", "port"},
		{"sftp://host:ssh/r", "port"},
		{"sftp://host:/r", "empty port"},
		{"sftp://u:secret@host/r", "passwords"},
		{"sftp://@host/r", "empty user"},
		{"sftp://host/r?x=1", "query"},
		{"sftp://host/r#frag", "query or fragment"},
		{"sftp://host/~bob/r", "~user"},
		{"sftp://[::1/r", "sftp location"},
		{"sftp://ho%20st/r", "sftp location"},
	} {
		_, err := ParseLocation(tt.spec)
		if err == nil {
			t.Errorf("ParseLocation(%q) succeeded", tt.spec)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tt.says) || strings.Contains(msg, "\n") {
			t.Errorf("ParseLocation(%q): error %q, want one line saying %q", tt.spec, msg, tt.says)
		}
	}
}

// FuzzParseLocation checks that ParseLocation never panics, returns one-line
// errors, and that what it accepts prints (String) as a spec that parses to the
// same Config.
func FuzzParseLocation(f *testing.F) {
	for _, s := range []string{
		"sftp:user@host:/srv/repo", "sftp:host:repo", "sftp:host:~/r", "sftp:u@[::1]:/r",
		"sftp://user@host:2222/srv/repo", "sftp://host/~/r", "sftp://[fe80::1%25eth0]:22/r",
		"sftp://u%40x@h/p%2Fq", "sftp:h:./~x", "sftp://h:1//~x", "sftp:", "sftp://",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		cfg, err := ParseLocation(spec)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") && !strings.ContainsAny(spec, "\n\r") {
				t.Errorf("ParseLocation(%q): error of several lines: %q", spec, err)
			}
			return
		}
		if cfg.Host == "" || cfg.Path == "" || cfg.Port < 0 || cfg.Port > 65535 {
			t.Fatalf("ParseLocation(%q) = %+v: missing or bad fields", spec, cfg)
		}
		for _, r := range cfg.Host + cfg.User {
			if unicode.IsControl(r) || r == ' ' || r == '@' || r == '/' {
				t.Fatalf("ParseLocation(%q) = %+v: host or user holds %q", spec, cfg, r)
			}
		}
		again, err := ParseLocation(cfg.String())
		if err != nil {
			t.Fatalf("ParseLocation(%q) = %+v, whose String %q does not parse: %v", spec, cfg, cfg.String(), err)
		}
		if again != cfg {
			t.Fatalf("ParseLocation(%q) = %+v, but its String %q parses to %+v", spec, cfg, cfg.String(), again)
		}
	})
}
