package api

import (
	"errors"
	"fmt"
	"io"
	"mime/multipart"
)

// maxFieldBytes bounds the echo_id field the relay reads from a multipart
// body.
const maxFieldBytes = 4 << 10

// multipartSend streams a client's multipart body to Chatwoot part by part
// (attachments are never held in memory) and appends an echo_id field when
// the client sent none (Rack keeps the last value of a field).
//
// The echo_id is known only while streaming: onEcho is called with it on the
// streaming goroutine before the end of the body is written, so before
// Chatwoot can have created the message. Call wait after the upstream call
// returned; only then are echoID and err safe to read.
type multipartSend struct {
	body        *io.PipeReader
	contentType string
	done        chan struct{}

	// Written by the streaming goroutine before done is closed.
	echoID string
	err    error // a clientBodyError when the client's body was at fault
}

// clientBodyError is a failure of the client's body (malformed, too large),
// as opposed to the upstream side closing the stream.
type clientBodyError struct{ err error }

func (e clientBodyError) Error() string { return e.err.Error() }
func (e clientBodyError) Unwrap() error { return e.err }

func startMultipart(src io.Reader, boundary string, onEcho func(string)) *multipartSend {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	m := &multipartSend{body: pr, contentType: mw.FormDataContentType(), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		m.err = m.copy(multipart.NewReader(src, boundary), mw, onEcho)
		pw.CloseWithError(m.err) // nil closes with io.EOF
	}()
	return m
}

// wait waits for the streaming goroutine and returns the client-side error,
// if any.
func (m *multipartSend) wait() error {
	<-m.done
	var ce clientBodyError
	if errors.As(m.err, &ce) {
		return ce.err
	}
	return nil
}

func (m *multipartSend) copy(mr *multipart.Reader, mw *multipart.Writer, onEcho func(string)) error {
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return clientError(err)
		}
		if err := m.copyPart(part, mw, onEcho); err != nil {
			return err
		}
	}
	if m.echoID == "" {
		m.echoID = newEchoID()
		onEcho(m.echoID)
		if err := mw.WriteField("echo_id", m.echoID); err != nil {
			return err
		}
	}
	return mw.Close()
}

func (m *multipartSend) copyPart(part *multipart.Part, mw *multipart.Writer, onEcho func(string)) error {
	defer part.Close()
	if part.FormName() == "echo_id" && part.FileName() == "" {
		return m.copyEchoField(part, mw, onEcho)
	}
	dst, err := mw.CreatePart(part.Header)
	if err != nil {
		return err
	}
	if _, err := io.Copy(pipeWriter{dst}, readerOnly{part}); err != nil {
		return classifyCopy(err)
	}
	return nil
}

// copyEchoField reads the client's echo_id and sends it on unchanged.
func (m *multipartSend) copyEchoField(part *multipart.Part, mw *multipart.Writer, onEcho func(string)) error {
	b, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
	if err != nil {
		return clientError(err)
	}
	if len(b) > maxFieldBytes {
		return clientBodyError{fmt.Errorf("%w: echo_id is longer than %d bytes", ErrInvalid, maxFieldBytes)}
	}
	dst, err := mw.CreatePart(part.Header)
	if err != nil {
		return err
	}
	if _, err := dst.Write(b); err != nil {
		return err
	}
	if len(b) > 0 && m.echoID == "" {
		m.echoID = string(b)
		onEcho(m.echoID)
	}
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
	return clientBodyError{fmt.Errorf("%w: malformed multipart body", ErrInvalid)}
}
