package chatwoottest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// maxBodySize bounds non-file request bodies.
const maxBodySize = 16 << 20

var errBadRequest = errors.New("chatwoottest: bad request")

// params are request params as Rails merges them: query, then body.
type params struct {
	values      map[string]any
	attachments []AttachmentData
}

// parseParams reads query and body params (JSON, form or multipart).
func parseParams(r *http.Request, fileURL func(name string) string) (params, error) {
	p := params{values: map[string]any{}}
	mergeForm(p.values, r.URL.Query())
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var err error
	switch {
	case r.Body == nil || r.Body == http.NoBody:
	case ct == "application/json" || strings.HasSuffix(ct, "+json"):
		err = p.readJSON(r.Body)
	case ct == "application/x-www-form-urlencoded":
		err = p.readForm(r.Body)
	case ct == "multipart/form-data":
		err = p.readMultipart(multipart.NewReader(r.Body, ctParams["boundary"]), fileURL)
	}
	return p, err
}

func (p *params) readJSON(body io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(body, maxBodySize))
	if err != nil || len(bytes.TrimSpace(raw)) == 0 {
		return err
	}
	var v map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return errBadRequest
	}
	for k, val := range v {
		p.values[k] = val
	}
	return nil
}

func (p *params) readForm(body io.Reader) error {
	raw, err := io.ReadAll(io.LimitReader(body, maxBodySize))
	if err != nil {
		return err
	}
	vals, err := url.ParseQuery(string(raw))
	if err != nil {
		return errBadRequest
	}
	mergeForm(p.values, vals)
	return nil
}

func (p *params) readMultipart(mr *multipart.Reader, fileURL func(string) string) error {
	form := url.Values{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errBadRequest
		}
		if err := p.readPart(part, form, fileURL); err != nil {
			return err
		}
	}
	mergeForm(p.values, form)
	return nil
}

func (p *params) readPart(part *multipart.Part, form url.Values, fileURL func(string) string) error {
	defer part.Close()
	if part.FileName() == "" {
		b, err := io.ReadAll(io.LimitReader(part, maxBodySize))
		form.Add(part.FormName(), string(b))
		return err
	}
	n, err := io.Copy(io.Discard, part)
	if err != nil {
		return errBadRequest
	}
	name := path.Base(part.FileName())
	a := AttachmentData{FileType: fileType(part.Header.Get("Content-Type")), FileSize: n, DataURL: fileURL(name)}
	if a.FileType == "image" {
		a.ThumbURL = a.DataURL
	}
	p.attachments = append(p.attachments, a)
	return nil
}

func fileType(contentType string) string {
	major, _, _ := strings.Cut(contentType, "/")
	switch major {
	case "image", "audio", "video":
		return major
	}
	return "file"
}

// mergeForm adds form values with Rails nesting: a[b]=c and a[]=x.
func mergeForm(dst map[string]any, vals url.Values) {
	for key, vs := range vals {
		base, sub, nested := strings.Cut(key, "[")
		switch {
		case !nested:
			dst[key] = vs[len(vs)-1]
		case sub == "]":
			dst[base] = toAny(vs)
		default:
			m, _ := dst[base].(map[string]any)
			if m == nil {
				m = map[string]any{}
				dst[base] = m
			}
			m[strings.TrimSuffix(sub, "]")] = vs[len(vs)-1]
		}
	}
}

func toAny(vs []string) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// str returns a scalar param as Rails' to_s would; JSON null is "" and
// present.
func (p params) str(key string) (string, bool) {
	v, ok := p.values[key]
	if !ok {
		return "", false
	}
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func (p params) get(key string) string {
	s, _ := p.str(key)
	return s
}

func (p params) opt(key string) *string {
	s, ok := p.str(key)
	if !ok {
		return nil
	}
	return &s
}

func (p params) object(key string) map[string]any {
	m, _ := p.values[key].(map[string]any)
	return m
}

func (p params) contact() contactParams {
	return contactParams{
		sourceID: p.get("source_id"), identifier: p.get("identifier"), identifierHash: p.get("identifier_hash"),
		name: p.opt("name"), email: p.opt("email"), phone: p.opt("phone_number"),
		avatarURL: p.opt("avatar_url"), custom: p.object("custom_attributes"),
	}
}
