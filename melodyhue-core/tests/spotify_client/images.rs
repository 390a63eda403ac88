//! Cover downloads under the image policy: allowed hosts, size, timeouts, redirects.

use super::*;

#[tokio::test]
async fn an_allowed_image_downloads() {
    let setup = Setup::new().await;
    let bytes: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    let url = setup
        .fake
        .add_image("cover.jpg", bytes.clone(), "image/jpeg");
    let fetched = setup
        .client
        .fetch_image(&url, &setup.policy(1024 * 1024))
        .await
        .unwrap();
    assert_eq!(fetched, bytes);
    // Exactly at the cap is still fine.
    let exact = setup
        .client
        .fetch_image(&url, &setup.policy(bytes.len()))
        .await
        .unwrap();
    assert_eq!(exact.len(), bytes.len());
}

#[tokio::test]
async fn images_from_other_hosts_are_rejected_without_a_request() {
    let setup = Setup::new().await;
    let url = setup
        .fake
        .add_image("cover.jpg", vec![1, 2, 3], "image/jpeg");
    let other_host = ImagePolicy {
        allowed_hosts: ImagePolicy::parse_hosts("i.scdn.co,http://localhost").unwrap(),
        max_bytes: 1024,
    };
    let https_only = ImagePolicy {
        allowed_hosts: ImagePolicy::parse_hosts("127.0.0.1").unwrap(),
        max_bytes: 1024,
    };
    for policy in [other_host, https_only, ImagePolicy::default()] {
        let result = setup.client.fetch_image(&url, &policy).await;
        assert!(
            matches!(result, Err(SpotifyError::ImageRejected(_))),
            "{policy:?}: {result:?}"
        );
    }
    let anything = setup.policy(1024);
    for url in [
        "file:///etc/passwd",
        "data:image/png;base64,AAAA",
        "ftp://127.0.0.1/x",
        "not a url",
        "",
    ] {
        let result = setup.client.fetch_image(url, &anything).await;
        assert!(
            matches!(result, Err(SpotifyError::ImageRejected(_))),
            "{url:?}: {result:?}"
        );
    }
    assert_eq!(setup.fake.calls(Endpoint::Image), 0);
}

#[tokio::test]
async fn oversized_images_are_rejected() {
    let setup = Setup::new().await;
    let announced = setup.fake.add_image("big.jpg", vec![7; 2000], "image/jpeg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&announced, &setup.policy(1999))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
    // No Content-Length and no end: only a client that stops reading at the cap answers
    // (one that buffered it all would hang until the timeout).
    let endless = setup.fake.add_endless_image("endless.jpg", "image/jpeg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&endless, &setup.policy(1024 * 1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
}

#[tokio::test]
async fn a_slow_image_times_out() {
    let setup = Setup::new().await;
    let url = setup
        .fake
        .add_slow_image("slow.jpg", vec![1], "image/jpeg", FOREVER);
    let impatient = client_for(&setup.fake, SHORT);
    assert_eq!(
        impatient.fetch_image(&url, &setup.policy(1024)).await,
        Err(SpotifyError::Timeout)
    );
}

#[tokio::test]
async fn redirects_are_checked_against_the_policy() {
    let setup = Setup::new().await;
    let target = setup.fake.add_image("target.jpg", vec![9, 9], "image/jpeg");
    let same_host = setup.fake.add_image_redirect("hop.jpg", &target);
    assert_eq!(
        setup
            .client
            .fetch_image(&same_host, &setup.policy(1024))
            .await
            .unwrap(),
        vec![9, 9]
    );
    let relative = setup
        .fake
        .add_image_redirect("relative.jpg", "/images/target.jpg");
    assert_eq!(
        setup
            .client
            .fetch_image(&relative, &setup.policy(1024))
            .await
            .unwrap(),
        vec![9, 9]
    );

    setup.fake.reset_counters();
    let elsewhere = target.replace("127.0.0.1", "localhost");
    let off_host = setup.fake.add_image_redirect("away.jpg", &elsewhere);
    assert!(matches!(
        setup
            .client
            .fetch_image(&off_host, &setup.policy(1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
    assert_eq!(setup.fake.calls(Endpoint::Image), 1);

    let looping = setup
        .fake
        .add_image_redirect("loop.jpg", "/images/loop.jpg");
    assert!(matches!(
        setup
            .client
            .fetch_image(&looping, &setup.policy(1024))
            .await,
        Err(SpotifyError::ImageRejected(_))
    ));
}

#[tokio::test]
async fn missing_images_are_upstream_errors() {
    let setup = Setup::new().await;
    let url = format!("{}/images/nothing-here.jpg", setup.fake.url());
    assert_eq!(
        setup.client.fetch_image(&url, &setup.policy(1024)).await,
        Err(SpotifyError::Upstream { status: 404 })
    );
}
