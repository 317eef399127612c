#!/usr/bin/env python3
"""Stand infra/template.yaml up on the local AWS emulator and describe what it created.

    emulator_stack.py --endpoint URL --stack-name NAME --jwt-secret SECRET [--parameter K=V ...]

1. Translates the SAM template with aws-sam-translator (moto's CloudFormation ignores SAM
   resources), with every function's CodeUri pointed at a placeholder zip in the emulator's S3
   (the emulator cannot run bootstraps; the test runs the handlers in its own process).
2. Stores the JWT secret as the SSM SecureString the template's JwtSecretParameterName names.
3. Creates the stack on the emulator's CloudFormation and waits for it.
4. Prints one JSON document on stdout: the stack outputs; per function its name and its
   environment as the emulator's Lambda holds it; the event source mappings (queues and the
   table's stream); the bus and schedule rules with their patterns and targets; the HTTP
   routes of the translated HTTP API; the Function URLs as the template declares them
   (moto has none); and the resources not created (the emulator's CloudFormation skips some
   types; conditions turn others off).

Because the emulator would try to run the functions itself (and cannot), the script then hands
delivery to the caller: it disables the event source mappings, and points each rule target at
a new "tap" SQS queue (the rule, its pattern and its input are unchanged), so the test receives
exactly the events each rule matched and invokes the target function's handler with them. The
test reads the table's stream itself (the emulator's launcher keeps a disabled mapping from
invoking anything).
"""

import argparse
import ast
import io
import json
import os
import re
import sys
import time
import zipfile

import boto3
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

REGION = "us-east-1"
ARTIFACTS_BUCKET = "runledger-emulator-artifacts"
ARTIFACT_KEY = "bootstrap.zip"


class NoManagedPolicies:
    """SAM asks for managed policy ARNs by name only for names in `Policies`; we use none."""

    def load(self):
        return {}


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def translate(template_path, parameters):
    # The translator fills in AWS::Region and friends from the default session.
    os.environ["AWS_DEFAULT_REGION"] = REGION
    with open(template_path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    code = {"Bucket": ARTIFACTS_BUCKET, "Key": ARTIFACT_KEY}
    template.setdefault("Globals", {}).setdefault("Function", {})["CodeUri"] = code
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"].pop("CodeUri", None)
    translated = transform(template, parameters, NoManagedPolicies())
    for resource in translated["Resources"].values():
        # Emulator gap: moto's CloudFormation takes an archive's pattern only as a JSON string.
        if resource["Type"] == "AWS::Events::Archive":
            pattern = resource["Properties"].get("EventPattern")
            if isinstance(pattern, dict):
                resource["Properties"]["EventPattern"] = json.dumps(pattern)
    # Emulator gap: moto's CloudFormation has no AWS::Lambda::Url (it skips the resource) and
    # refuses an output reading its attributes; such an output gets a stand-in URL, and the
    # URL's configuration is reported as the template declares it (`declared_function_urls`).
    urls = {
        logical
        for logical, resource in translated["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Url"
    }
    for output in translated.get("Outputs", {}).values():
        value = output.get("Value")
        if isinstance(value, dict) and value.get("Fn::GetAtt", [None])[0] in urls:
            output["Value"] = f"https://{value['Fn::GetAtt'][0].lower()}.lambda-url.{REGION}.on.aws/"
    return translated


def function_urls_of(translated):
    """The Function URLs the template declares: the function each serves, and its settings."""
    declared = []
    for resource in translated["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Url":
            continue
        properties = resource["Properties"]
        target = properties["TargetFunctionArn"]
        declared.append(
            {
                "function": target.get("Ref") if isinstance(target, dict) else target,
                "auth_type": properties.get("AuthType"),
                "invoke_mode": properties.get("InvokeMode", "BUFFERED"),
                "cors": properties.get("Cors"),
            }
        )
    return declared


def upload_placeholder_code(s3):
    try:
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("bootstrap", "#!/bin/sh\necho 'placeholder: the test runs handlers in process'\n")
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=ARTIFACT_KEY, Body=buffer.getvalue())


def routes_of(translated):
    """(method, path, function logical id) of every route of every HTTP API in the template."""
    routes = []
    for resource in translated["Resources"].values():
        if resource["Type"] != "AWS::ApiGatewayV2::Api":
            continue
        for path, methods in resource["Properties"]["Body"]["paths"].items():
            for method, operation in methods.items():
                uri = operation["x-amazon-apigateway-integration"]["uri"]
                text = uri["Fn::Sub"] if isinstance(uri, dict) else uri
                # arn:${AWS::Partition}:...:functions/${StartFunction.Arn}/invocations
                function = re.search(r"\$\{(\w+)\.Arn\}", text).group(1)
                if method == "x-amazon-apigateway-any-method":
                    method = "ANY"
                routes.append({"method": method.upper(), "path": path, "function": function})
    return routes


def role_policies(iam, role_arn):
    """The role's policy statements, references resolved: inline ones (the template's) and the
    names of the managed ones attached (SAM's basic execution role: logs only)."""
    role = role_arn.rsplit("/", 1)[1]
    statements = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            # Emulator quirk: a policy created by its CloudFormation comes back as a Python
            # literal rather than JSON.
            try:
                document = json.loads(document)
            except json.JSONDecodeError:
                document = ast.literal_eval(document)
        found = document["Statement"]
        statements.extend(found if isinstance(found, list) else [found])
    attached = [
        p["PolicyName"] for p in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    ]
    return {"statements": statements, "managed": attached}


def queue_url_of(sqs, arn):
    return sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[1])["QueueUrl"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--template", default="infra/template.yaml")
    parser.add_argument("--parameter", action="append", default=[], help="KEY=VALUE")
    args = parser.parse_args()
    parameters = dict(p.split("=", 1) for p in args.parameter)

    translated = translate(args.template, parameters)
    endpoint = args.endpoint
    cfn, lam, sqs, events, ssm, s3, iam = (
        client(s, endpoint)
        for s in ("cloudformation", "lambda", "sqs", "events", "ssm", "s3", "iam")
    )
    upload_placeholder_code(s3)
    secret_name = parameters.get(
        "JwtSecretParameterName",
        translated["Parameters"]["JwtSecretParameterName"]["Default"],
    )
    ssm.put_parameter(Name=secret_name, Value=args.jwt_secret, Type="SecureString", Overwrite=True)

    cfn.create_stack(
        StackName=args.stack_name,
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 120
    while True:
        stack = cfn.describe_stacks(StackName=args.stack_name)["Stacks"][0]
        if stack["StackStatus"] == "CREATE_COMPLETE":
            break
        if not stack["StackStatus"].endswith("IN_PROGRESS") or time.time() > deadline:
            sys.exit(f"stack {args.stack_name}: {stack['StackStatus']} {stack.get('StackStatusReason', '')}")
        time.sleep(0.5)

    resources = cfn.list_stack_resources(StackName=args.stack_name)["StackResourceSummaries"]
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in resources}
    # Resources the emulator's CloudFormation does not implement, or that a condition turned off.
    not_created = {
        logical: resource["Type"]
        for logical, resource in translated["Resources"].items()
        if logical not in physical
    }

    functions = {}
    arn_to_function = {}
    for logical, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        config = lam.get_function_configuration(FunctionName=physical[logical])
        # The environment as the emulator's Lambda holds it (every reference resolved); the
        # rest as the template says (the emulator keeps no architecture).
        declared = resource["Properties"]
        functions[logical] = {
            "name": config["FunctionName"],
            "environment": config.get("Environment", {}).get("Variables", {}),
            "timeout": config.get("Timeout"),
            "runtime": config.get("Runtime"),
            "handler": config.get("Handler"),
            "architectures": declared.get("Architectures"),
            "role_policies": role_policies(iam, config["Role"]),
        }
        arn_to_function[config["FunctionArn"]] = logical

    mappings = []
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        function = arn_to_function.get(mapping["FunctionArn"])
        if function is None:
            continue
        source = mapping["EventSourceArn"]
        described = {
            "function": function,
            "batch_size": mapping.get("BatchSize"),
            "function_response_types": mapping.get("FunctionResponseTypes", []),
        }
        if source.split(":")[2] == "dynamodb":
            described.update(
                {
                    "stream_arn": source,
                    "starting_position": mapping.get("StartingPosition"),
                    "parallelization_factor": mapping.get("ParallelizationFactor"),
                    "bisect_batch_on_function_error": mapping.get("BisectBatchOnFunctionError"),
                    "maximum_retry_attempts": mapping.get("MaximumRetryAttempts"),
                    "filter_patterns": [
                        json.loads(f["Pattern"])
                        for f in mapping.get("FilterCriteria", {}).get("Filters", [])
                    ],
                    "on_failure": mapping.get("DestinationConfig", {})
                    .get("OnFailure", {})
                    .get("Destination"),
                }
            )
        else:
            described.update({"queue_url": queue_url_of(sqs, source), "queue_arn": source})
        mappings.append(described)
        lam.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)

    rules = []
    for logical, resource in translated["Resources"].items():
        if resource["Type"] != "AWS::Events::Rule":
            continue
        # Rules on the custom bus name it; the sweep's schedule rule is on the default bus.
        on_custom_bus = "EventBusName" in resource["Properties"]
        bus_name = stack_output(stack, "EventBusName") if on_custom_bus else "default"
        # moto's physical id of a rule is its ARN or its name.
        rule_name = physical[logical].rsplit("/", 1)[-1]
        description = events.describe_rule(Name=rule_name, EventBusName=bus_name)
        targets = events.list_targets_by_rule(Rule=rule_name, EventBusName=bus_name)["Targets"]
        described_targets = []
        for target in targets:
            tap_name = f"{args.stack_name}-tap-{logical}-{target['Id']}"[:80]
            tap_url = sqs.create_queue(QueueName=tap_name)["QueueUrl"]
            tap_arn = sqs.get_queue_attributes(QueueUrl=tap_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            described_targets.append(
                {
                    "id": target["Id"],
                    "arn": target["Arn"],
                    "function": arn_to_function.get(target["Arn"]),
                    "tap_queue_url": tap_url,
                }
            )
            tapped = {k: v for k, v in target.items() if k in ("Id", "Input", "InputPath", "InputTransformer")}
            tapped["Arn"] = tap_arn
            events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=[tapped])
        rules.append(
            {
                "logical_id": logical,
                "name": rule_name,
                "bus": bus_name,
                "event_pattern": json.loads(description["EventPattern"]) if description.get("EventPattern") else None,
                "schedule": description.get("ScheduleExpression"),
                "targets": described_targets,
            }
        )

    print(
        json.dumps(
            {
                "stack_name": args.stack_name,
                "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
                "functions": functions,
                "event_source_mappings": mappings,
                "rules": rules,
                "routes": routes_of(translated),
                "declared_function_urls": function_urls_of(translated),
                "not_created": not_created,
                # Emulator gap: no Scheduler in its CloudFormation, so the schedules as the
                # template declares them (target function, input before substitution).
                "declared_schedules": [
                    {
                        "logical_id": logical,
                        "target_function": r["Properties"]["Target"]["Arn"]["Fn::GetAtt"][0],
                        "input": r["Properties"]["Target"]["Input"]["Fn::Sub"],
                    }
                    for logical, r in translated["Resources"].items()
                    if r["Type"] == "AWS::Scheduler::Schedule"
                ],
                # Emulator gap: its CloudFormation does not apply a table's TTL setting, so
                # the template's own is reported.
                "declared_table_ttl": [
                    r["Properties"].get("TimeToLiveSpecification")
                    for r in translated["Resources"].values()
                    if r["Type"] == "AWS::DynamoDB::Table"
                ],
            },
            indent=2,
            sort_keys=True,
        )
    )


def stack_output(stack, key):
    for output in stack.get("Outputs", []):
        if output["OutputKey"] == key:
            return output["OutputValue"]
    return None


if __name__ == "__main__":
    main()
