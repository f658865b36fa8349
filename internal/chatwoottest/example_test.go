package chatwoottest_test

import (
	"fmt"

	"github.com/gorilla/websocket"
	"github.com/relayhq/relay/internal/chatwoottest"
)

// A contact created through the model subscribes over a real socket and
// receives an agent reply.
func Example() {
	fake := chatwoottest.New(chatwoottest.Options{Seed: 1})
	defer fake.Close()
	addr, err := fake.Listen("127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fake.AddInbox(chatwoottest.InboxConfig{Identifier: "inbox-1"})
	ci, _ := fake.CreateContact("inbox-1", chatwoottest.ContactParams{Name: "Jane"})
	conv, _ := fake.CreateConversation("inbox-1", ci.SourceID)

	d := websocket.Dialer{Subprotocols: []string{chatwoottest.ProtocolV1}}
	ws, _, err := d.Dial("ws://"+addr.String()+"/cable", nil)
	if err != nil {
		panic(err)
	}
	defer ws.Close()
	id := `{"channel":"RoomChannel","pubsub_token":"` + ci.PubsubToken + `"}`
	ws.WriteJSON(map[string]string{"command": "subscribe", "identifier": id})
	for range 3 { // welcome, confirm_subscription, presence.update
		ws.ReadMessage()
	}
	fake.AgentReply(conv.AccountID, conv.DisplayID, "Hi Jane")
	var frame struct {
		Message struct {
			Event string
			Data  struct {
				Content     string
				MessageType int `json:"message_type"`
			}
		}
	}
	ws.ReadJSON(&frame)
	fmt.Println(frame.Message.Event, frame.Message.Data.MessageType, frame.Message.Data.Content)
	// Output: message.created 1 Hi Jane
}
