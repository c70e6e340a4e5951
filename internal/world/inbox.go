package world

import (
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// Inbox is a person's HTTP endpoint on loopback subscribed to an SNS topic:
// it confirms its subscriptions by visiting the SubscribeURL, as a person
// following the link would, and keeps each notification's message.
type Inbox struct {
	URL       string
	Confirmed chan string // the topic ARN of each subscription it confirmed
	Messages  chan string // each notification's Message
	srv       *http.Server
}

// NewInbox listens on a free loopback port.
func NewInbox() (*Inbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &Inbox{URL: "http://" + ln.Addr().String() + "/alerts", Confirmed: make(chan string, 16), Messages: make(chan string, 256)}
	in.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Type, SubscribeURL, Message, TopicArn string }
		if json.NewDecoder(r.Body).Decode(&m) != nil {
			http.Error(w, "not an SNS message", http.StatusBadRequest)
			return
		}
		switch m.Type {
		case "SubscriptionConfirmation":
			if resp, err := http.Get(m.SubscribeURL); err == nil {
				resp.Body.Close()
				in.Confirmed <- m.TopicArn
			}
		case "Notification":
			in.Messages <- m.Message
		}
	})}
	go in.srv.Serve(ln)
	return in, nil
}

// Close stops listening.
func (in *Inbox) Close() error { return in.srv.Close() }

// S3Event is what a person reads of an S3 event message: a failure's event
// name, key and reason, or the test event S3 sends for a bucket.
type S3Event struct {
	Name, Key, Reason string
	TestBucket        string // set for s3:TestEvent
}

// ParseS3Event reads an S3 event message; ok is false for anything else.
func ParseS3Event(message string) (e S3Event, ok bool) {
	var ev struct {
		Event, Bucket string
		Records       []struct {
			EventName string `json:"eventName"`
			S3        struct {
				Object struct{ Key string }
			}
			ReplicationEventData struct {
				FailureReason string `json:"failureReason"`
			}
		}
	}
	if json.Unmarshal([]byte(message), &ev) != nil {
		return e, false
	}
	if ev.Event == "s3:TestEvent" {
		return S3Event{TestBucket: ev.Bucket}, true
	}
	if len(ev.Records) == 0 {
		return e, false
	}
	r := ev.Records[0]
	return S3Event{Name: r.EventName, Key: r.S3.Object.Key, Reason: r.ReplicationEventData.FailureReason}, true
}
