def test_partner_user_lists_only_its_own_organization(client, world):
    resp = client.get("/v1/organizations", headers=world["partner_user_a"].headers)
    assert resp.status_code == 200
    assert [o["id"] for o in resp.get_json()["items"]] == [world.partner_a_id]
