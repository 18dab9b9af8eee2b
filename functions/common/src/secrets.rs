//! SSM SecureStrings, as the functions and the CLI read them (`stackwave_core::secret`): their
//! types without decryption, and their values only for a CloudFormation call.

use std::collections::BTreeSet;

use aws_sdk_ssm::types::ParameterType;
use stackwave_core::plan::PlannedStack;
use stackwave_core::secret::{self, SecretRef};
use stackwave_core::Error;

use crate::aws_error;

/// The `{ssm}` parameters of `stacks` that are SecureStrings: GetParameters without decryption,
/// 10 names a call, so no secret's value is read. A parameter that does not exist is not in the
/// answer (deploy-stack reports it when its stack starts: an earlier stage may create it).
pub async fn secure_names(
    ssm: &aws_sdk_ssm::Client,
    stacks: &[PlannedStack],
) -> Result<BTreeSet<String>, Error> {
    let names: Vec<String> = secret::ssm_names(stacks).into_iter().collect();
    let mut secure = BTreeSet::new();
    for chunk in names.chunks(10) {
        let out = ssm
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .with_decryption(false)
            .send()
            .await
            .map_err(|e| aws_error("ssm:GetParameters", e))?;
        secure.extend(
            out.parameters()
                .iter()
                .filter(|p| p.r#type() == Some(&ParameterType::SecureString))
                .filter_map(|p| p.name().map(str::to_string)),
        );
    }
    Ok(secure)
}

/// The values of a record's secrets, read with decryption at the version the record names, for
/// one CloudFormation call: never stored, never logged.
pub async fn values(
    ssm: &aws_sdk_ssm::Client,
    stack: &str,
    secrets: &[SecretRef],
) -> Result<Vec<(String, String)>, Error> {
    let mut values = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let selector = secret.selector();
        match ssm.get_parameter().name(&selector).with_decryption(true).send().await {
            Ok(out) => values.push((
                secret.parameter.clone(),
                out.parameter().and_then(|p| p.value()).unwrap_or_default().to_string(),
            )),
            Err(e) if e.as_service_error().is_some_and(|se| {
                se.is_parameter_not_found() || se.is_parameter_version_not_found()
            }) => {
                return Err(Error::ParameterNotFound {
                    stack: stack.to_string(),
                    parameter: secret.parameter.clone(),
                    cause: format!("SSM parameter {selector} (name:version) no longer exists"),
                    fix: format!(
                        "restore version {} of {} (or run the deployment again to use its current version)",
                        secret.version, secret.ssm
                    ),
                })
            }
            Err(e) => return Err(aws_error("ssm:GetParameter", e)),
        }
    }
    Ok(values)
}
