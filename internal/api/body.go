package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Body kinds the relay reads and edits.
const (
	kindNone      = "none"
	kindJSON      = "json"
	kindForm      = "form"
	kindMultipart = "multipart"
	kindOther     = "other"
)

// bodyKind classifies a request body by its Content-Type; boundary is set
// for multipart.
func bodyKind(r *http.Request) (kind, boundary string) {
	if !hasBody(r) {
		return kindNone, ""
	}
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err != nil:
		return kindOther, ""
	case ct == "application/json" || strings.HasSuffix(ct, "+json"):
		return kindJSON, ""
	case ct == "application/x-www-form-urlencoded":
		return kindForm, ""
	case ct == "multipart/form-data" && params["boundary"] != "":
		return kindMultipart, params["boundary"]
	}
	return kindOther, ""
}

// hasBody reports whether a server request has a body.
func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// readBody reads a whole body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, err
	case err != nil:
		return nil, bodyReadError(err)
	}
	return b, nil
}

// object is a JSON object whose member values are kept as sent, in order,
// so that adding a member leaves the rest of the document intact.
type object []member

type member struct {
	key string
	raw json.RawMessage
}

// parseObject parses a JSON document that must be one object.
func parseObject(b []byte) (object, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, jsonError(dec, "the body must be a JSON object")
	}
	var o object
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		if err != nil || !ok {
			return nil, jsonError(dec, "malformed JSON")
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonError(dec, "malformed JSON")
		}
		o = append(o, member{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonError(dec, "malformed JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, jsonError(dec, "unexpected data after the JSON object")
	}
	return o, nil
}

func jsonError(dec *json.Decoder, what string) error {
	return fmt.Errorf("%w: %s (near byte %d)", ErrInvalid, what, dec.InputOffset())
}

// get returns the value of key; with duplicate keys the last one, as Rails
// reads it.
func (o object) get(key string) (json.RawMessage, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].key == key {
			return o[i].raw, true
		}
	}
	return nil, false
}

// text returns key's value as text (a string or a number), "" when absent,
// null or another type.
func (o object) text(key string) string {
	raw, _ := o.get(key)
	return scalarText(raw)
}

// set replaces key's (last) value with the string s, or appends the member.
func (o object) set(key, s string) object {
	raw, _ := json.Marshal(s)
	for i := len(o) - 1; i >= 0; i-- {
		if o[i].key == key {
			o[i].raw = raw
			return o
		}
	}
	return append(o, member{key: key, raw: raw})
}

// encode writes the object back, member values byte for byte.
func (o object) encode() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

// form is a urlencoded body kept as sent; fields are appended, never
// re-encoded, because Rack's nested params (submitted_values[][name]) depend
// on the order of the pairs.
type form struct {
	raw  string
	vals url.Values
}

func parseForm(b []byte) (form, error) {
	vals, err := url.ParseQuery(string(b))
	if err != nil {
		return form{}, fmt.Errorf("%w: malformed form body", ErrInvalid)
	}
	return form{raw: string(b), vals: vals}, nil
}

// text returns key's last value, the one Rack keeps.
func (f form) text(key string) string { return lastValue(f.vals, key) }

// add appends key=value; Rack reads the last value of a repeated key.
func (f form) add(key, value string) form {
	f.raw = appendPair(f.raw, key, value)
	f.vals.Add(key, value)
	return f
}

func lastValue(vals url.Values, key string) string {
	vs := vals[key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// appendPair appends key=value to a raw query or form body.
func appendPair(raw, key, value string) string {
	pair := url.QueryEscape(key) + "=" + url.QueryEscape(value)
	if raw == "" {
		return pair
	}
	if strings.HasSuffix(raw, "&") {
		return raw + pair
	}
	return raw + "&" + pair
}

func isMaxBytes(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// bytesBody is a body the Chatwoot client can send again on a retry.
func bytesBody(b []byte) io.Reader { return bytes.NewBuffer(b) }
