//! Revoking the tablet from the phone signs the tablet out on its next
//! request, with its unsent writes kept; the phone keeps syncing.

use chrono::Duration;
use http::{Method, StatusCode};
use trainsync_client::local::CheckIn;
use trainsync_client::sync::Trigger;
use trainsync_client::{Health, SecretStore, SessionOutcome};

use crate::harness::{Device, Server};

#[tokio::test]
async fn a_revoked_tablet_is_signed_out_and_keeps_its_unsent_data() {
    let server = Server::start().await;
    let phone = Device::sign_in(&server, "phone").await;
    let tablet = Device::sign_in(&server, "tablet").await;
    let phone_token = phone.secrets.get().unwrap().unwrap().access_token;
    let revoked = server
        .ctx
        .request(Method::DELETE, "/devices/tablet", Some(&phone_token), None)
        .await;
    assert_eq!(revoked.status, StatusCode::OK);

    server.ctx.clock.advance(Duration::minutes(1));
    let date = tablet
        .client
        .check_in(CheckIn {
            soreness: Some(4),
            ..CheckIn::default()
        })
        .unwrap();
    let outcome = tablet.client.sync(Trigger::LocalWrite).await.unwrap();
    assert!(
        matches!(&outcome, SessionOutcome::SignedOut { reason } if reason.contains("device_revoked")),
        "{outcome:?}"
    );
    assert_eq!(
        tablet.secrets.get().unwrap(),
        None,
        "the dead tokens are forgotten"
    );
    let status = tablet.client.status().unwrap();
    assert_eq!(status.health, Health::Red);
    assert!(status.signed_out.is_some());
    assert_eq!(
        tablet.client.pending_count().unwrap(),
        1,
        "the unsent check-in is kept"
    );
    assert_eq!(tablet.client.check_ins().unwrap()[0].value.date, date);
    // A later attempt does not even reach the network.
    server.take_requests();
    assert!(matches!(
        tablet.client.sync(Trigger::Manual).await.unwrap(),
        SessionOutcome::SignedOut { .. }
    ));
    assert!(server.take_requests().is_empty());

    phone
        .client
        .check_in(CheckIn {
            soreness: Some(2),
            ..CheckIn::default()
        })
        .unwrap();
    let outcome = phone.client.sync(Trigger::LocalWrite).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{outcome:?}"
    );

    // Signing in again sends what waited.
    tablet
        .client
        .sign_in(server.ctx.login(crate::harness::USER, "tablet").await)
        .unwrap();
    let outcome = tablet.client.sync(Trigger::Launch).await.unwrap();
    assert!(
        matches!(outcome, SessionOutcome::Synced { .. }),
        "{outcome:?}"
    );
    assert_eq!(tablet.client.pending_count().unwrap(), 0);
}
