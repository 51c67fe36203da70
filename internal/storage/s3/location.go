package s3

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Config says where a repository lives in S3.
type Config struct {
	// Endpoint is the server's host, with a port if not the scheme's default, such as
	// "s3.amazonaws.com" or "127.0.0.1:7070".
	Endpoint string
	// Secure says to use https; otherwise http.
	Secure bool
	// Bucket holds the repository.
	Bucket string
	// Prefix is the folder of the repository in the bucket, without leading or
	// trailing slashes; empty for the bucket's top.
	Prefix string
	// Region is the bucket's region; empty means AWS_REGION, then
	// AWS_DEFAULT_REGION, then asking the server.
	Region string
}

// String returns the location as ParseLocation takes it, such as
// "s3:https://host/bucket/prefix".
func (c Config) String() string {
	scheme := "http"
	if c.Secure {
		scheme = "https"
	}
	s := "s3:" + scheme + "://" + c.Endpoint + "/" + c.Bucket
	if c.Prefix != "" {
		s += "/" + c.Prefix
	}
	return s
}

// ParseLocation parses an S3 repository location: s3:http://host[:port]/bucket[/prefix]
// or s3:https://..., or s3:host[:port]/bucket[/prefix], which means https. The error
// for anything else says what is wrong and what the form is.
func ParseLocation(spec string) (Config, error) {
	cfg, err := parseLocation(spec)
	if err != nil {
		return Config{}, fmt.Errorf("invalid S3 location %q: %w (want s3:https://host[:port]/bucket[/prefix])", spec, err)
	}
	return cfg, nil
}

func parseLocation(spec string) (Config, error) {
	rest, ok := strings.CutPrefix(spec, "s3:")
	if !ok {
		return Config{}, errors.New(`it does not start with "s3:"`)
	}
	var cfg Config
	switch {
	case strings.HasPrefix(rest, "http://"):
		rest = strings.TrimPrefix(rest, "http://")
	case strings.HasPrefix(rest, "https://"):
		rest = strings.TrimPrefix(rest, "https://")
		cfg.Secure = true
	case strings.HasPrefix(rest, "//") || strings.Contains(rest, "://"):
		return Config{}, errors.New("the scheme must be http or https")
	default:
		cfg.Secure = true // like restic: no scheme means https
	}
	switch {
	case strings.Contains(rest, "@"):
		return Config{}, errors.New("credentials do not belong in the location (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); @ is not allowed")
	case strings.Contains(rest, "?"):
		return Config{}, errors.New("a query (?...) is not allowed")
	case strings.Contains(rest, "#"):
		return Config{}, errors.New("a fragment (#...) is not allowed")
	case strings.Contains(rest, "%"):
		return Config{}, errors.New("escapes (%) are not allowed; write the characters themselves")
	}
	host, path, _ := strings.Cut(rest, "/")
	cfg.Endpoint = host
	if err := checkEndpoint(cfg.Endpoint); err != nil {
		return Config{}, err
	}
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Config{}, errors.New("no bucket")
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Config{}, fmt.Errorf("bucket name %q: %v", bucket, strings.TrimPrefix(err.Error(), "Bucket name "))
	}
	cfg.Bucket = bucket
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		for _, part := range strings.Split(prefix, "/") {
			switch part {
			case "":
				return Config{}, fmt.Errorf("prefix %q has an empty folder name (//)", prefix)
			case ".", "..":
				return Config{}, fmt.Errorf("prefix %q has a %q folder", prefix, part)
			}
		}
		if !utf8.ValidString(prefix) {
			return Config{}, fmt.Errorf("prefix %q is not UTF-8", prefix)
		}
		for _, c := range prefix {
			if c < ' ' || c == 0x7f || c == '\\' {
				return Config{}, fmt.Errorf("prefix %q has a control character or backslash", prefix)
			}
		}
	}
	cfg.Prefix = prefix
	return cfg, nil
}

// checkEndpoint reports whether host is a host name or IP address (IPv6 in
// brackets), with an optional port.
func checkEndpoint(host string) error {
	if host == "" {
		return errors.New("no host")
	}
	name := host
	if h, port, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || port[0] == '+' {
			return fmt.Errorf("host %q: invalid port", host)
		}
		name = h
		if strings.HasPrefix(host, "[") && net.ParseIP(name) == nil {
			return fmt.Errorf("host %q: invalid IPv6 address", host)
		}
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		name = host[1 : len(host)-1]
		if net.ParseIP(name) == nil {
			return fmt.Errorf("host %q: invalid IPv6 address", host)
		}
	} else if strings.Contains(host, ":") {
		return fmt.Errorf("host %q: invalid port, or an IPv6 address not in brackets", host)
	}
	if name == "" {
		return errors.New("no host")
	}
	if net.ParseIP(name) != nil {
		return nil
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' && c != '_' {
			return fmt.Errorf("host %q: invalid character %q", host, c)
		}
	}
	return nil
}
