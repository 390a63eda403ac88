//! The checks of overlays.

use super::*;

/// Overlays read back as written, a user's oldest first; a patch changes only its fields and
/// `updated_at`; a missing overlay updates to `None` and deletes to `false`.
pub async fn overlays_round_trip(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bob", 1).await;
    let newer = overlay(&alice.id, "Newer", "classic", 20);
    let older = overlay(&alice.id, "Older", "minimal", 10);
    let long_template = "t".repeat(64);
    let bobs = overlay(&bob.id, &"n".repeat(120), &long_template, 5);
    for o in [&newer, &older, &bobs] {
        store.insert_overlay(o).await.unwrap();
    }
    assert_eq!(
        store.overlay_by_id(&bobs.id).await.unwrap(),
        Some(bobs.clone())
    );
    assert_eq!(store.overlay_by_id("no-such-overlay").await.unwrap(), None);
    assert_eq!(
        store.overlays_of(&alice.id).await.unwrap(),
        vec![older.clone(), newer.clone()]
    );
    assert!(store.overlays_of("no-such-user").await.unwrap().is_empty());

    let renamed = store
        .update_overlay(
            &older.id,
            &OverlayPatch {
                name: Some("Renamed".parse().unwrap()),
                template: None,
            },
            at(30),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.template.as_str(),
            renamed.updated_at
        ),
        ("Renamed", "minimal", at(30))
    );
    assert_eq!(renamed.created_at, older.created_at);
    let retemplated = store
        .update_overlay(
            &older.id,
            &OverlayPatch {
                name: None,
                template: Some("color".parse().unwrap()),
            },
            at(31),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (retemplated.name.as_str(), retemplated.template.as_str()),
        ("Renamed", "color")
    );
    assert_eq!(
        store.overlay_by_id(&older.id).await.unwrap(),
        Some(retemplated)
    );
    assert_eq!(
        store
            .update_overlay("no-such-overlay", &OverlayPatch::default(), at(32))
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_overlay(&older.id).await.unwrap());
    assert!(!store.delete_overlay(&older.id).await.unwrap());
    assert_eq!(store.overlays_of(&alice.id).await.unwrap(), vec![newer]);
}

/// All overlays page newest first with exact totals, carry their owner's name, and the search
/// covers name, template, id, owner id and owner name, literally and case-insensitively.
pub async fn list_overlays_pages_and_searches(store: &dyn Store) {
    let alice = add_user(store, "alice", 0).await;
    let bob = add_user(store, "bobby_tables", 1).await;
    let mut all = Vec::new();
    for i in 0..12 {
        let o = overlay(&alice.id, &format!("Overlay {i:02}"), "classic", i);
        store.insert_overlay(&o).await.unwrap();
        all.push(o);
    }
    let special = overlay(&bob.id, "100% Fun_Stuff", "Minimal", 100);
    store.insert_overlay(&special).await.unwrap();

    let first = store.list_overlays(&page(1, 5, None)).await.unwrap();
    assert_eq!(first.total, 13);
    assert_eq!(first.items[0].overlay, special);
    assert_eq!(first.items[0].owner_username, "bobby_tables");
    assert_eq!(first.items[1].overlay.name, "Overlay 11");
    assert_eq!(first.items[1].owner_username, "alice");
    let last = store.list_overlays(&page(3, 5, None)).await.unwrap();
    let names: Vec<&str> = last.items.iter().map(|o| o.overlay.name.as_str()).collect();
    assert_eq!(names, ["Overlay 02", "Overlay 01", "Overlay 00"]);

    let found = |search: &str| {
        let query = page(1, 50, Some(search));
        async move {
            let page = store.list_overlays(&query).await.unwrap();
            assert_eq!(page.total, page.items.len() as u64);
            page.items
                .into_iter()
                .map(|o| o.overlay.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(found("%").await, [special.id.as_str()]);
    assert_eq!(found("fun_").await, [special.id.as_str()]);
    assert_eq!(found("MINIMAL").await, [special.id.as_str()]);
    assert_eq!(found("_tab").await, [special.id.as_str()], "owner name");
    assert_eq!(found(&bob.id).await, [special.id.as_str()], "owner id");
    assert_eq!(found(&all[3].id).await, [all[3].id.as_str()], "overlay id");
    assert_eq!(found("overlay 1").await.len(), 2);
    assert!(found("!").await.is_empty());
}
