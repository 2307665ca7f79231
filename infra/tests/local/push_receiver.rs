//! The local push receiver and the HTTP push sender against each other, over
//! real loopback HTTP: deliveries arrive intact, an outage is a retryable
//! error, and nothing is recorded twice.

use sync_core::push::{HttpPushProvider, PushError, PushMessage, PushProvider, PushTarget};
use trainsync_infra::push_receiver::PushReceiver;
use trainsync_protocol::domain::AlertKind;
use uuid::Uuid;

fn message() -> PushMessage {
    PushMessage {
        alert_id: Uuid::now_v7(),
        kind: AlertKind::InjuryRisk,
        title_key: "alert.injury_risk.critical.title".into(),
        body_key: "alert.injury_risk.critical.body".into(),
        seq: 41,
        cursor: "cursor".into(),
    }
}

#[tokio::test]
async fn deliveries_arrive_and_an_outage_is_retryable() {
    let receiver = PushReceiver::start().await.expect("a loopback port");
    let sender = HttpPushProvider::new(receiver.url());
    let target = PushTarget {
        device_id: "phone".into(),
        endpoint: "local://phone".into(),
    };
    let push = message();

    receiver.fail_next(2);
    for _ in 0..2 {
        let error = sender.send(&target, &push).await.expect_err("the outage");
        assert!(matches!(error, PushError::Retryable(_)), "{error}");
    }
    assert!(
        receiver.received().is_empty(),
        "a failed delivery records nothing"
    );
    sender
        .send(&target, &push)
        .await
        .expect("delivered once the receiver recovers");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].target, target);
    assert_eq!(received[0].message, push);
}

#[tokio::test]
async fn an_unreachable_receiver_is_retryable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/push", listener.local_addr().unwrap());
    drop(listener);
    let target = PushTarget {
        device_id: "phone".into(),
        endpoint: "local://phone".into(),
    };
    let error = HttpPushProvider::new(url)
        .send(&target, &message())
        .await
        .expect_err("nobody listens");
    assert!(matches!(error, PushError::Retryable(_)), "{error}");
}
