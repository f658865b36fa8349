package api

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime/multipart"
	"os"
	"slices"
)

// maxFieldBytes bounds the small fields (echo_id, identifier...) the relay
// reads from a multipart body.
const maxFieldBytes = 4 << 10

// multipartSend streams a client's multipart body to Chatwoot part by part
// (attachments are never held in memory). It reads a few small fields on
// the way (echo_id, identifier, ...) and, after the client's last part,
// lets the caller append fields (Rack keeps the last value of a field) or
// cut the body off.
//
// The end callback runs on the streaming goroutine before the closing
// boundary is written, so before Chatwoot can have acted on the request. An
// error from it closes the stream unfinished: Chatwoot never gets a complete
// request. Call finish after the upstream call returned, whatever it
// returned; only then are err and whole safe to read.
type multipartSend struct {
	body        *io.PipeReader
	contentType string
	done        chan struct{}

	// Written by the streaming goroutine before done is closed.
	err   error // a clientBodyError when the client's body was at fault
	whole bool  // the closing boundary was handed to the upstream side
}

// multipartEdit says what a multipartSend reads and what it may add.
type multipartEdit struct {
	// read are fields read (at most maxFieldBytes each) and sent on
	// unchanged; end gets the last value of each.
	read []string
	// digest are fields of any size whose SHA-256 end gets.
	digest []string
	// end returns the fields to append, or an error that cuts the body off.
	// fingerprint identifies the parts whatever the boundary.
	end func(p multipartParts) ([]formField, error)
}

// multipartParts is what a multipartSend saw of the client's body.
type multipartParts struct {
	fields      map[string]string // last value of each read field
	digests     map[string][]byte // SHA-256 of the last value of each digest field
	fingerprint []byte            // SHA-256 over every part's name, file name, type and data
	files       int               // parts with a file name
}

// formField is a field to append to a form.
type formField struct{ name, value string }

// clientBodyError is a failure of the client's body (malformed, too large)
// or a refusal by end, as opposed to the upstream side closing the stream.
type clientBodyError struct{ err error }

func (e clientBodyError) Error() string { return e.err.Error() }
func (e clientBodyError) Unwrap() error { return e.err }

func startMultipart(src io.Reader, boundary string, edit multipartEdit) *multipartSend {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	m := &multipartSend{body: pr, contentType: mw.FormDataContentType(), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.err = m.copy(multipart.NewReader(src, boundary), mw, edit)
		m.whole = m.err == nil
		pw.CloseWithError(m.err) // nil closes with io.EOF
	}()
	return m
}

// errUpstreamGone stops streaming a body the Chatwoot call gave up on.
var errUpstreamGone = errors.New("api: the chatwoot call ended before the end of the body")

// Read reads the edited body; it is what the Chatwoot client sends.
func (m *multipartSend) Read(p []byte) (int, error) { return m.body.Read(p) }

// finish ends the stream after the upstream call returned (responded: with
// a response, which may come before the whole body was read) and returns
// the error that kept the body from being sent whole: the client's (too
// large, malformed) or end's; nil when the body was complete or upstream
// stopped reading it.
//
// The pipe is always closed here: the Chatwoot client does not close a
// body it stopped reading (a refused connection, a limiter or attempt
// timeout, a connection reset mid-body), and the streaming goroutine would
// otherwise block on its next write for ever. It then stops at its next
// write, at the latest when the client's body read deadline ends.
func (m *multipartSend) finish(responded bool) error {
	cause := errUpstreamGone
	if responded {
		cause = errResponded
	}
	m.body.CloseWithError(cause)
	<-m.done
	var ce clientBodyError
	if errors.As(m.err, &ce) {
		return ce.err
	}
	return nil
}

// sentWhole reports, after finish, whether the whole body (closing
// boundary included) went to the upstream side. When it did not, Chatwoot
// got an incomplete request and cannot have acted on it.
func (m *multipartSend) sentWhole() bool { return m.whole }

func (m *multipartSend) copy(mr *multipart.Reader, mw *multipart.Writer, edit multipartEdit) error {
	seen := multipartParts{fields: map[string]string{}, digests: map[string][]byte{}}
	fp := sha256.New()
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return clientError(err)
		}
		if err := copyPart(part, mw, edit, &seen, fp); err != nil {
			return err
		}
	}
	seen.fingerprint = fp.Sum(nil)
	add, err := edit.end(seen)
	if err != nil {
		return clientBodyError{err}
	}
	for _, f := range add {
		if err := mw.WriteField(f.name, f.value); err != nil {
			return err
		}
	}
	return mw.Close()
}

// copyPart sends one part on, reading or hashing it as edit asks, and adds
// it to the fingerprint.
func copyPart(part *multipart.Part, mw *multipart.Writer, edit multipartEdit, seen *multipartParts, fp hash.Hash) error {
	defer part.Close()
	name, file := part.FormName(), part.FileName()
	dst, err := mw.CreatePart(part.Header)
	if err != nil {
		return err
	}
	data := sha256.New()
	var src io.Reader = io.TeeReader(readerOnly{part}, data)
	var field *bytes.Buffer
	switch {
	case file != "":
		seen.files++
	case slices.Contains(edit.read, name):
		field = &bytes.Buffer{}
		src = io.TeeReader(io.LimitReader(src, maxFieldBytes+1), field)
	}
	if _, err := io.Copy(pipeWriter{dst}, readerOnly{src}); err != nil {
		return classifyCopy(err)
	}
	if field != nil {
		if field.Len() > maxFieldBytes {
			return clientBodyError{fmt.Errorf("%w: field %s is longer than %d bytes", ErrInvalid, name, maxFieldBytes)}
		}
		seen.fields[name] = field.String()
	}
	sum := data.Sum(nil)
	if file == "" && slices.Contains(edit.digest, name) {
		seen.digests[name] = sum
	}
	fmt.Fprintf(fp, "%q %q %q %x\n", name, file, part.Header.Get("Content-Type"), sum)
	return nil
}

// readerOnly hides a part's other methods from io.Copy, so that reads and
// writes go through the wrappers that tell their errors apart.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) { return r.r.Read(p) }

// pipeWriter tags write errors: they come from the upstream side.
type pipeWriter struct{ w io.Writer }

func (p pipeWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	if err != nil {
		err = upstreamWriteError{err}
	}
	return n, err
}

type upstreamWriteError struct{ err error }

func (e upstreamWriteError) Error() string { return e.err.Error() }
func (e upstreamWriteError) Unwrap() error { return e.err }

// classifyCopy tells a failure writing to the upstream pipe from one
// reading the client's body.
func classifyCopy(err error) error {
	var we upstreamWriteError
	if errors.As(err, &we) {
		return we.err
	}
	return clientError(err)
}

// clientError wraps a failure reading the client's multipart body.
func clientError(err error) error {
	var ce clientBodyError
	if errors.As(err, &ce) {
		return err
	}
	if isMaxBytes(err) {
		return clientBodyError{err}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return clientBodyError{bodyReadError(err)}
	}
	return clientBodyError{fmt.Errorf("%w: malformed multipart body", ErrInvalid)}
}
