package cli

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"
)

// inbox plays the person who gets the alerts: an HTTP endpoint on loopback
// subscribed to the alert topic. It confirms the subscription as a person
// would (the SubscribeURL) and keeps the replication failures S3 reports.
type inbox struct {
	url       string
	confirmed chan struct{}
	failures  chan failureEvent
	srv       *http.Server
}

type failureEvent struct {
	Key, Reason string
}

func newInbox() (*inbox, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	in := &inbox{url: "http://" + ln.Addr().String() + "/alerts", confirmed: make(chan struct{}, 8), failures: make(chan failureEvent, 64)}
	in.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Type, SubscribeURL, Message string }
		if json.NewDecoder(r.Body).Decode(&m) != nil {
			return
		}
		switch m.Type {
		case "SubscriptionConfirmation":
			if resp, err := http.Get(m.SubscribeURL); err == nil {
				resp.Body.Close()
				in.confirmed <- struct{}{}
			}
		case "Notification":
			var ev struct {
				Records []struct {
					S3 struct {
						Object struct{ Key string }
					}
					ReplicationEventData struct {
						FailureReason string `json:"failureReason"`
					}
				}
			}
			if json.Unmarshal([]byte(m.Message), &ev) == nil && len(ev.Records) > 0 && ev.Records[0].ReplicationEventData.FailureReason != "" {
				in.failures <- failureEvent{ev.Records[0].S3.Object.Key, ev.Records[0].ReplicationEventData.FailureReason}
			}
		}
	})}
	go in.srv.Serve(ln)
	return in, nil
}

// wait returns the next value of ch, or an error after 10 seconds.
func wait[T any](ch chan T, what string) (T, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-time.After(10 * time.Second):
		var zero T
		return zero, fmt.Errorf("no %s within 10 s", what)
	}
}
