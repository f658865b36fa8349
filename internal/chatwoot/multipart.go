package chatwoot

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"strings"
	"unicode"
)

// maxAttachments is Chatwoot's limit per message
// (Message::NUMBER_OF_PERMITTED_ATTACHMENTS).
const maxAttachments = 15

// multipartBody streams a message create with attachments through a pipe, so
// files are never held in memory. It can be replayed when every attachment
// is an io.Seeker: each replay first stops the previous writer, then seeks
// every attachment back to where it started.
func multipartBody(p MessageParams) (*body, string, error) {
	if err := checkAttachments(p.Attachments); err != nil {
		return nil, "", err
	}
	boundary := multipart.NewWriter(io.Discard).Boundary()
	starts, replayable := attachmentOffsets(p.Attachments)
	var prev *pipeRun
	open := func() (io.ReadCloser, error) {
		if prev != nil {
			if !replayable {
				return nil, errNotReplayable
			}
			prev.stop()
			if err := rewind(p.Attachments, starts); err != nil {
				return nil, err
			}
		}
		prev = startPipe(func(w io.Writer) error { return writeMultipart(w, boundary, p) })
		return prev.pr, nil
	}
	finish := func() {
		if prev != nil {
			prev.pr.CloseWithError(errAbandoned)
		}
	}
	b := &body{length: -1, replayable: replayable, open: open, finish: finish}
	return b, "multipart/form-data; boundary=" + boundary, nil
}

func checkAttachments(as []Attachment) error {
	if len(as) > maxAttachments {
		return fmt.Errorf("%w: more than %d attachments", ErrArgument, maxAttachments)
	}
	for i, a := range as {
		if a.Body == nil {
			return fmt.Errorf("%w: attachment %d has no body", ErrArgument, i)
		}
	}
	return nil
}

// attachmentOffsets records where each seekable attachment starts; the body
// is replayable only if all of them are seekable.
func attachmentOffsets(as []Attachment) ([]int64, bool) {
	starts := make([]int64, len(as))
	for i, a := range as {
		s, ok := a.Body.(io.Seeker)
		if !ok {
			return nil, false
		}
		off, err := s.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, false
		}
		starts[i] = off
	}
	return starts, true
}

func rewind(as []Attachment, starts []int64) error {
	for i, a := range as {
		if _, err := a.Body.(io.Seeker).Seek(starts[i], io.SeekStart); err != nil {
			return fmt.Errorf("chatwoot: rewind attachment %d: %w", i, err)
		}
	}
	return nil
}

// pipeRun is one writer goroutine feeding a request body.
type pipeRun struct {
	pr   *io.PipeReader
	done chan struct{}
}

func startPipe(write func(io.Writer) error) *pipeRun {
	pr, pw := io.Pipe()
	run := &pipeRun{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		pw.CloseWithError(write(pw))
	}()
	return run
}

// stop ends the writer and waits until it no longer touches the attachments.
func (r *pipeRun) stop() {
	r.pr.CloseWithError(errAbandoned)
	<-r.done
}

func writeMultipart(w io.Writer, boundary string, p MessageParams) error {
	mw := multipart.NewWriter(w)
	if err := mw.SetBoundary(boundary); err != nil {
		return err
	}
	if p.Content != "" {
		if err := mw.WriteField("content", p.Content); err != nil {
			return err
		}
	}
	if p.EchoID != "" {
		if err := mw.WriteField("echo_id", p.EchoID); err != nil {
			return err
		}
	}
	for _, a := range p.Attachments {
		if err := writeAttachment(mw, a); err != nil {
			return err
		}
	}
	return mw.Close()
}

func writeAttachment(mw *multipart.Writer, a Attachment) error {
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", multipart.FileContentDisposition("attachments[]", attachmentName(a.Filename)))
	h.Set("Content-Type", orDefault(a.ContentType, "application/octet-stream"))
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(part, a.Body)
	return err
}

// attachmentName drops control characters (no header injection) and never
// returns "": Rack ignores file parts with an empty filename.
func attachmentName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	if name == "" {
		return "attachment"
	}
	return name
}
