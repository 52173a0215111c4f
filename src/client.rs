//! A client of the HTTP API, for the operator commands (`convoke conference ...`,
//! `convoke status`): the same calls, credentials and answers as any other API user.

use crate::api::model::*;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the server address must start with http:// or https://: {0}")]
    BadUrl(String),
    #[error("{0:?} is not a conference ID")]
    BadId(String),
    #[error("cannot reach the server at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server refused ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    #[error("unexpected answer from the server: {0}")]
    BadAnswer(String),
}

pub struct ApiClient {
    base: String,
    user: String,
    password: String,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(base: &str, user: &str, password: &str) -> Result<Self, ClientError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::BadUrl(base.into()));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(90))
            .build()
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            user: user.into(),
            password: password.into(),
            http,
        })
    }

    pub async fn list(&self) -> Result<ConferenceList, ClientError> {
        self.call(self.http.get(self.url("/api/v1/conferences")))
            .await
    }

    pub async fn show(&self, id: &str) -> Result<ConferenceDetail, ClientError> {
        self.call(self.http.get(self.url(&conference_path(id)?)))
            .await
    }

    pub async fn open(&self, req: &CreateConference) -> Result<Invitation, ClientError> {
        self.call(self.http.post(self.url("/api/v1/conferences")).json(req))
            .await
    }

    pub async fn close(&self, id: &str) -> Result<Closed, ClientError> {
        self.call(self.http.delete(self.url(&conference_path(id)?)))
            .await
    }

    pub async fn invite(
        &self,
        id: &str,
        users: Vec<String>,
    ) -> Result<InvitationResults, ClientError> {
        let path = format!("{}/invitations", conference_path(id)?);
        self.call(
            self.http
                .post(self.url(&path))
                .json(&InvitationRequest { users }),
        )
        .await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.call(self.http.get(self.url("/api/v1/status"))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = request
            .basic_auth(&self.user, Some(&self.password))
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
            return Err(ClientError::Refused { status, message });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::BadAnswer(e.to_string()))
    }
}

/// `/api/v1/conferences/ID`, refusing IDs that would change the path (conference IDs are
/// letters and digits).
fn conference_path(id: &str) -> Result<String, ClientError> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ClientError::BadId(id.into()));
    }
    Ok(format!("/api/v1/conferences/{id}"))
}
