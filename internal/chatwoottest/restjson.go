package chatwoottest

import (
	"encoding/json"
	"net/http"
)

// Public API response shapes (views/public/api/v1/**). Field order is
// Chatwoot's.

type railsError struct {
	Status int    `json:"status"`
	Error  string `json:"error"`
}

type validationBody struct {
	Message    string   `json:"message"`
	Attributes []string `json:"attributes"`
}

type workingHours struct {
	DayOfWeek    int  `json:"day_of_week"`
	ClosedAllDay bool `json:"closed_all_day"`
	OpenHour     *int `json:"open_hour"`
	OpenMinutes  *int `json:"open_minutes"`
	CloseHour    *int `json:"close_hour"`
	CloseMinutes *int `json:"close_minutes"`
	OpenAllDay   bool `json:"open_all_day"`
}

type restInbox struct {
	Identifier                string         `json:"identifier"`
	IdentityValidationEnabled bool           `json:"identity_validation_enabled"`
	Name                      string         `json:"name"`
	Timezone                  string         `json:"timezone"`
	WorkingHours              []workingHours `json:"working_hours"`
	WorkingHoursEnabled       bool           `json:"working_hours_enabled"`
	CSATSurveyEnabled         bool           `json:"csat_survey_enabled"`
	GreetingEnabled           bool           `json:"greeting_enabled"`
	GreetingMessage           *string        `json:"greeting_message"`
}

// defaultWorkingHours is Chatwoot's default schedule: Monday to Friday 9-17.
func defaultWorkingHours() []workingHours {
	out := make([]workingHours, 7)
	for d := range out {
		out[d].DayOfWeek = d
		if d == 0 || d == 6 {
			out[d].ClosedAllDay = true
			continue
		}
		open, zero, closeH := 9, 0, 17
		out[d].OpenHour, out[d].OpenMinutes, out[d].CloseHour, out[d].CloseMinutes = &open, &zero, &closeH, &zero
	}
	return out
}

func (in *inbox) rest() restInbox {
	return restInbox{
		Identifier: in.identifier, IdentityValidationEnabled: in.hmacMandatory, Name: in.name,
		Timezone: "UTC", WorkingHours: defaultWorkingHours(),
	}
}

type restContactInbox struct {
	SourceID    string     `json:"source_id"`
	PubsubToken string     `json:"pubsub_token"`
	ID          int64      `json:"id"`
	Name        nullString `json:"name"`
	Email       nullString `json:"email"`
	PhoneNumber nullString `json:"phone_number"`
}

func (ci *contactInbox) rest() restContactInbox {
	c := ci.contact
	return restContactInbox{
		SourceID: ci.sourceID, PubsubToken: ci.token, ID: c.id, Name: nullString(c.name),
		Email: nullString(c.email), PhoneNumber: nullString(c.phone),
	}
}

type restContact struct {
	ID                   int64           `json:"id"`
	Name                 nullString      `json:"name"`
	Email                nullString      `json:"email"`
	PhoneNumber          nullString      `json:"phone_number"`
	AccountID            int64           `json:"account_id"`
	CreatedAt            isoTime         `json:"created_at"`
	UpdatedAt            isoTime         `json:"updated_at"`
	AdditionalAttributes json.RawMessage `json:"additional_attributes"`
	Identifier           nullString      `json:"identifier"`
	CustomAttributes     any             `json:"custom_attributes"`
	LastActivityAt       isoTime         `json:"last_activity_at"`
	ContactType          string          `json:"contact_type"`
	MiddleName           string          `json:"middle_name"`
	LastName             string          `json:"last_name"`
	Location             string          `json:"location"`
	CountryCode          string          `json:"country_code"`
	Blocked              bool            `json:"blocked"`
}

func (c *contact) rest() restContact {
	typ := "visitor"
	if c.email != "" || c.phone != "" || c.identifier != "" {
		typ = "lead"
	}
	return restContact{
		ID: c.id, Name: nullString(c.name), Email: nullString(c.email), PhoneNumber: nullString(c.phone),
		AccountID: c.accountID, CreatedAt: isoTime(c.createdAt), UpdatedAt: isoTime(c.updatedAt),
		AdditionalAttributes: emptyObject, Identifier: nullString(c.identifier),
		CustomAttributes: objectOrEmpty(c.custom), LastActivityAt: isoTime(c.lastActivAt), ContactType: typ,
	}
}

type restMessage struct {
	ID                int64            `json:"id"`
	Content           nullString       `json:"content"`
	MessageType       int              `json:"message_type"`
	ContentType       string           `json:"content_type"`
	ContentAttributes any              `json:"content_attributes"`
	CreatedAt         int64            `json:"created_at"`
	ConversationID    int64            `json:"conversation_id"`
	Attachments       []attachmentPush `json:"attachments,omitempty"`
	Sender            any              `json:"sender,omitempty"`
}

func (msg *message) rest() restMessage {
	p := msg.data(nil).push()
	return restMessage{
		ID: p.ID, Content: p.Content, MessageType: p.MessageType, ContentType: p.ContentType,
		ContentAttributes: p.ContentAttributes, CreatedAt: p.CreatedAt, ConversationID: p.ConversationID,
		Attachments: p.Attachments, Sender: p.Sender,
	}
}

type restConversation struct {
	ID                int64         `json:"id"`
	UUID              string        `json:"uuid"`
	InboxID           int64         `json:"inbox_id"`
	ContactLastSeenAt int64         `json:"contact_last_seen_at"`
	Status            string        `json:"status"`
	AgentLastSeenAt   int64         `json:"agent_last_seen_at"`
	Messages          []restMessage `json:"messages"`
	Contact           restContact   `json:"contact"`
}

func (cv *conversation) rest() restConversation {
	out := restConversation{
		ID: cv.displayID, UUID: cv.uuid, InboxID: cv.inboxID, ContactLastSeenAt: unixOrZero(cv.contactSeen),
		Status: cv.status, AgentLastSeenAt: unixOrZero(cv.agentSeen), Messages: []restMessage{},
		Contact: cv.ci.contact.rest(),
	}
	for _, msg := range cv.messages {
		if msg.listed() {
			out.Messages = append(out.Messages, msg.rest())
		}
	}
	return out
}

// listed reports whether the public API shows msg (no private, no activity).
func (msg *message) listed() bool { return !msg.private && msg.msgType != MessageActivity }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"status":500,"error":"Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

func notFound(w http.ResponseWriter) {
	writeJSON(w, http.StatusNotFound, railsError{Status: http.StatusNotFound, Error: "Not Found"})
}
