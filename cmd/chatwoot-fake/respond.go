package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/relayhq/relay/internal/chatwoottest"
)

// decode reads a JSON body into v (an empty body keeps v's defaults) and
// answers 400 when it cannot.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		fail(w, http.StatusBadRequest, fmt.Errorf("request body: %w", err))
		return false
	}
	return true
}

// reply answers v as JSON, or the error err maps to.
func reply(w http.ResponseWriter, v any, err error) {
	switch {
	case errors.Is(err, chatwoottest.ErrNotFound):
		fail(w, http.StatusNotFound, err)
	case errors.Is(err, chatwoottest.ErrInvalid):
		fail(w, http.StatusBadRequest, err)
	case errors.Is(err, errNoOpenConversation):
		fail(w, http.StatusConflict, err)
	case err != nil:
		fail(w, http.StatusInternalServerError, err)
	default:
		writeJSON(w, http.StatusOK, v)
	}
}

func fail(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// messageJSON is a message as the control API shows it.
type messageJSON struct {
	ID             int64  `json:"id"`
	ConversationID int64  `json:"conversation_id"`
	MessageType    int    `json:"message_type"`
	Content        string `json:"content"`
	Private        bool   `json:"private"`
}

func toJSONMessage(m chatwoottest.Message) messageJSON {
	return messageJSON{m.ID, m.ConversationID, m.MessageType, m.Content, m.Private}
}
