package format

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"unicode/utf8"
)

// RawString is a string of arbitrary bytes, such as a file name that is not valid
// UTF-8. In JSON it is a plain string when it is valid UTF-8 and {"b64": "..."}
// otherwise, so every byte survives.
type RawString string

type rawB64 struct {
	B64 string `json:"b64"`
}

// MarshalJSON implements json.Marshaler.
func (s RawString) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(s)) {
		return json.Marshal(string(s))
	}
	return json.Marshal(rawB64{B64: base64.StdEncoding.EncodeToString([]byte(s))})
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *RawString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var r rawB64
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		d, err := base64.StdEncoding.DecodeString(r.B64)
		if err != nil {
			return err
		}
		if utf8.Valid(d) {
			return errors.New("b64 form used for a valid UTF-8 string")
		}
		*s = RawString(d)
		return nil
	}
	var p string
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = RawString(p)
	return nil
}
