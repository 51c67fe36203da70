package sftp

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Config says where a repository on an SFTP server is. Empty fields are taken from
// ~/.ssh/config when connecting, as ssh does.
type Config struct {
	// User is the login name; empty means the ssh config's User, or the local user.
	User string
	// Host is a host name, an IP address or a Host alias of ~/.ssh/config.
	Host string
	// Port is the server's port; 0 means the ssh config's Port, or 22.
	Port int
	// Path is the repository folder: absolute, or relative to the login folder.
	Path string
}

// locationForms names the forms ParseLocation accepts, for its errors.
const locationForms = "want sftp:[user@]host:path or sftp://[user@]host[:port]/path"

// ParseLocation parses an SFTP repository location:
//
//	sftp:[user@]host:/abs/path   an absolute path
//	sftp:[user@]host:path        relative to the login folder (so is ~/path)
//	sftp://[user@]host[:port]/abs/path
//	sftp://[user@]host[:port]/~/path   relative to the login folder
//
// An IPv6 address is written in brackets ([::1]). The path is cleaned (path.Clean).
// Any other spec is a one-line error.
func ParseLocation(spec string) (Config, error) {
	rest, ok := strings.CutPrefix(spec, "sftp:")
	if !ok {
		return Config{}, fmt.Errorf("not an sftp location %q: %s", spec, locationForms)
	}
	var (
		cfg Config
		err error
	)
	if strings.HasPrefix(rest, "//") {
		cfg, err = parseURL(spec)
	} else {
		cfg, err = parseSCP(rest)
	}
	if err != nil {
		return Config{}, fmt.Errorf("sftp location %q: %w", spec, err)
	}
	return cfg, nil
}

// parseSCP parses the scp-like form after "sftp:": [user@]host:path.
func parseSCP(s string) (Config, error) {
	var cfg Config
	// The user ends at the first '@' before the host's colon.
	if at := strings.IndexByte(s, '@'); at >= 0 {
		if colon := strings.IndexByte(s, ':'); colon < 0 || at < colon {
			cfg.User, s = s[:at], s[at+1:]
			if cfg.User == "" {
				return Config{}, errors.New("empty user name before '@'")
			}
		}
	}
	var p string
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return Config{}, errors.New("missing ']' after an IPv6 address")
		}
		cfg.Host = s[1:end]
		after, ok := strings.CutPrefix(s[end+1:], ":")
		if !ok {
			return Config{}, errors.New("missing ':' between host and path; " + locationForms)
		}
		if !strings.Contains(cfg.Host, ":") {
			return Config{}, fmt.Errorf("%q in brackets is not an IPv6 address", cfg.Host)
		}
		p = after
	} else {
		var ok bool
		cfg.Host, p, ok = strings.Cut(s, ":")
		if !ok {
			return Config{}, errors.New("missing ':' between host and path; " + locationForms)
		}
	}
	if err := checkUser(cfg.User); err != nil {
		return Config{}, err
	}
	if err := checkHost(cfg.Host); err != nil {
		return Config{}, err
	}
	switch {
	case p == "~":
		p = "."
	case strings.HasPrefix(p, "~/"):
		p = p[2:]
		if p == "" {
			p = "."
		}
	case strings.HasPrefix(p, "~"):
		return Config{}, errors.New("~user paths are not supported; give the path")
	}
	var err error
	if cfg.Path, err = cleanPath(p); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// parseURL parses the URL form sftp://[user@]host[:port]/path.
func parseURL(spec string) (Config, error) {
	u, err := url.Parse(spec)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Config{}, err
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(spec, "#") {
		return Config{}, errors.New("a query or fragment ('?', '#') has no meaning here")
	}
	var cfg Config
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return Config{}, errors.New("passwords are not supported in the location; log in with a key or ssh-agent")
		}
		cfg.User = u.User.Username()
		if cfg.User == "" {
			return Config{}, errors.New("empty user name before '@'")
		}
	}
	if err := checkUser(cfg.User); err != nil {
		return Config{}, err
	}
	cfg.Host = u.Hostname()
	if strings.HasPrefix(u.Host, "[") != strings.Contains(cfg.Host, ":") {
		return Config{}, fmt.Errorf("%q is not a host", u.Host)
	}
	if err := checkHost(cfg.Host); err != nil {
		return Config{}, err
	}
	if ps := u.Port(); ps != "" {
		port, err := strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return Config{}, fmt.Errorf("port %q is not a number from 1 to 65535", ps)
		}
		cfg.Port = port
	} else if strings.HasSuffix(u.Host, ":") {
		return Config{}, errors.New("empty port after ':'")
	}
	p := u.Path
	switch {
	case p == "" || p == "/":
		return Config{}, errors.New("no path after the host; " + locationForms)
	case p == "/~":
		p = "."
	case strings.HasPrefix(p, "/~/"):
		p = p[3:]
		if p == "" {
			p = "."
		}
	case strings.HasPrefix(p, "/~"):
		return Config{}, errors.New("~user paths are not supported; give the path")
	}
	if cfg.Path, err = cleanPath(p); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkUser rejects user names that cannot be sent as a login name.
func checkUser(user string) error {
	if !utf8.ValidString(user) {
		return fmt.Errorf("user name %q is not UTF-8", user)
	}
	for _, r := range user {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '@' || r == ':' || r == '/' {
			return fmt.Errorf("user name %q contains %q", user, r)
		}
	}
	return nil
}

// checkHost rejects empty host names and names with characters no host has.
func checkHost(host string) error {
	if host == "" {
		return errors.New("no host; " + locationForms)
	}
	if strings.HasPrefix(host, "-") {
		return fmt.Errorf("host %q starts with '-'", host)
	}
	if !utf8.ValidString(host) {
		return fmt.Errorf("host %q is not UTF-8", host)
	}
	for _, r := range host {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '@' || r == '/' || r == '\\' || r == '[' || r == ']' || r == '%' {
			return fmt.Errorf("host %q contains %q", host, r)
		}
	}
	return nil
}

// cleanPath checks and cleans a repository path.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("no path after the host; " + locationForms)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", errors.New("the path contains a NUL byte")
	}
	return path.Clean(p), nil
}

// String returns the location in the form ParseLocation reads back: the scp-like
// form, or the URL form when there is a port.
func (c Config) String() string {
	if c.Port == 0 {
		var b strings.Builder
		b.WriteString("sftp:")
		if c.User != "" {
			b.WriteString(c.User + "@")
		}
		if strings.Contains(c.Host, ":") {
			b.WriteString("[" + c.Host + "]")
		} else {
			b.WriteString(c.Host)
		}
		b.WriteString(":")
		if strings.HasPrefix(c.Path, "~") {
			b.WriteString("./") // not a home folder
		}
		b.WriteString(c.Path)
		return b.String()
	}
	u := url.URL{Scheme: "sftp", Host: c.Host, Path: c.Path}
	if strings.Contains(c.Host, ":") {
		u.Host = "[" + c.Host + "]"
	}
	u.Host += ":" + strconv.Itoa(c.Port)
	if c.User != "" {
		u.User = url.User(c.User)
	}
	if !strings.HasPrefix(c.Path, "/") {
		u.Path = "/~/" + c.Path
	} else if strings.HasPrefix(c.Path, "/~") {
		u.Path = "/" + c.Path // not a home folder; cleaned away when parsed
	} else if c.Path == "/" {
		u.Path = "//" // a lone "/" reads as no path; cleaned to "/" when parsed
	}
	return u.String()
}
