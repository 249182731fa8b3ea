//! Resource servers registered with the authorization server: the URI that
//! becomes their tokens' `aud`, the scopes they accept, the name the consent
//! page shows, and the credentials they introspect with (secret as a digest).

use mcpgate_types::{ClientId, ResourceUri, ScopeSet};
use std::time::SystemTime;

use crate::Row as SqliteRow;
use sqlx::Row as _;

use crate::Store;
use crate::decode::parsed;
use crate::error::{Kind, StoreError};
use crate::time::{from_unix, to_unix};

/// A registered resource server as stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ResourceServerRow {
    /// The canonical resource URI (the `aud` of its tokens).
    pub resource: ResourceUri,
    /// Its name on the consent page.
    pub name: String,
    /// The scopes it accepts.
    pub scopes: ScopeSet,
    /// Its client id at the introspection endpoint.
    pub client_id: ClientId,
    /// Hex SHA-256 of its introspection secret.
    pub secret_digest: String,
    /// When it was registered.
    pub created_at: SystemTime,
}

impl ResourceServerRow {
    /// A new row, registered now.
    pub fn new(
        resource: ResourceUri,
        name: String,
        scopes: ScopeSet,
        client_id: ClientId,
        secret_digest: String,
    ) -> ResourceServerRow {
        ResourceServerRow {
            resource,
            name,
            scopes,
            client_id,
            secret_digest,
            created_at: SystemTime::now(),
        }
    }

    fn from_row(row: &SqliteRow) -> Result<ResourceServerRow, sqlx::Error> {
        Ok(ResourceServerRow {
            resource: parsed(row, "resource")?,
            name: row.try_get("name")?,
            scopes: crate::api_keys::split_scopes(&row.try_get::<String, _>("scopes")?),
            client_id: parsed(row, "client_id")?,
            secret_digest: row.try_get("secret_digest")?,
            created_at: from_unix(row.try_get("created_at")?),
        })
    }
}

macro_rules! columns {
    () => {
        "resource, name, scopes, client_id, secret_digest, created_at"
    };
}

impl Store {
    /// Registers a resource server; a taken resource or client id is [`StoreError::Duplicate`].
    pub async fn insert_resource_server(&self, r: &ResourceServerRow) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO resource_servers (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6)"
        ))
        .bind(r.resource.as_str())
        .bind(&r.name)
        .bind(r.scopes.to_string())
        .bind(r.client_id.as_str())
        .bind(&r.secret_digest)
        .bind(to_unix(r.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::on_insert(e, Kind::ResourceServer, r.resource.as_str()))?;
        Ok(())
    }

    /// The resource server with this canonical resource URI.
    pub async fn find_resource_server(
        &self,
        resource: &str,
    ) -> Result<Option<ResourceServerRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                columns!(),
                " FROM resource_servers WHERE resource = $1"
            ),
            resource,
            ResourceServerRow::from_row,
        )
        .await
    }

    /// The resource server that introspects as `client_id`.
    pub async fn find_resource_server_by_client(
        &self,
        client_id: &str,
    ) -> Result<Option<ResourceServerRow>, StoreError> {
        self.fetch_row(
            concat!(
                "SELECT ",
                columns!(),
                " FROM resource_servers WHERE client_id = $1"
            ),
            client_id,
            ResourceServerRow::from_row,
        )
        .await
    }

    /// Every registered resource server, oldest first.
    pub async fn list_resource_servers(&self) -> Result<Vec<ResourceServerRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            columns!(),
            " FROM resource_servers ORDER BY created_at, resource"
        ))
        .fetch_all(&self.pool)
        .await?;
        crate::decode::all(&rows, ResourceServerRow::from_row)
    }

    /// Removes the resource server with this resource URI or client id.
    /// Tokens already issued for it stay valid until they expire (their grants
    /// belong to the clients that asked for them). Returns whether it existed.
    pub async fn delete_resource_server(
        &self,
        resource_or_client: &str,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM resource_servers WHERE resource = $1 OR client_id = $1")
                .bind(resource_or_client)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registered_resource_servers_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).await.expect("open");
        let scopes: ScopeSet = "a b".parse().expect("scopes");
        let row = ResourceServerRow::new(
            "https://rs.example/mcp".parse().unwrap(),
            "Notes".into(),
            scopes.clone(),
            "rs-notes".parse().unwrap(),
            crate::oauth::digest_hex("s3cret"),
        );
        store.insert_resource_server(&row).await.expect("insert");
        let again = store.insert_resource_server(&row).await;
        assert!(
            matches!(again, Err(StoreError::Duplicate { .. })),
            "{again:?}"
        );
        let found = store
            .find_resource_server_by_client("rs-notes")
            .await
            .expect("find")
            .expect("some");
        assert_eq!(found.scopes, scopes);
        assert_eq!(found.resource, "https://rs.example/mcp");
        assert_eq!(store.list_resource_servers().await.expect("list").len(), 1);
        assert!(
            store
                .delete_resource_server("rs-notes")
                .await
                .expect("delete")
        );
        assert!(
            !store
                .delete_resource_server("https://rs.example/mcp")
                .await
                .expect("delete")
        );
        assert!(
            store
                .find_resource_server("https://rs.example/mcp")
                .await
                .expect("find")
                .is_none()
        );
    }
}
