"""Create the Bellyfed stacks on a bare moto server, stage by stage and wave by wave, the way
stackwave orders them, then update one stack with a changed parameter.

Checks on the way: every `{output}` names an output the referenced template declares, every
parameter passed exists in the template, and every required template parameter is passed.

    .venv/bin/moto_server -p 4598 &
    .venv/bin/python examples/bellyfed/verify_on_moto.py [http://127.0.0.1:4598]
"""

import os
import sys
from pathlib import Path

import boto3
import yaml

HERE = Path(__file__).resolve().parent
ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:4598"
ENV = "dev"


class CfnLoader(yaml.SafeLoader):
    pass


CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def load_template(rel):
    return yaml.load((HERE / rel).read_text(), Loader=CfnLoader)


def dependencies(stack):
    deps = set(stack.get("dependsOn", []))
    for value in stack.get("parameters", {}).values():
        if isinstance(value, dict) and "output" in value:
            deps.add(value["output"].split(".", 1)[0])
    return deps


def waves(stage):
    pending = {s["name"]: dependencies(s) for s in stage["stacks"]}
    while pending:
        wave = [n for n, d in pending.items() if not d & pending.keys()]
        assert wave, f"cycle in stage {stage['name']}"
        yield wave
        for n in wave:
            del pending[n]


def main():
    text = (HERE / "manifest.yaml").read_text().replace("${environment}", ENV)
    manifest = yaml.safe_load(text)
    specs = {s["name"]: s for st in manifest["stages"] for s in st["stacks"]}
    templates = {n: load_template(s["template"]) for n, s in specs.items()}
    for name, spec in specs.items():
        declared = templates[name].get("Parameters", {})
        passed = spec.get("parameters", {})
        assert not passed.keys() - declared.keys(), (name, passed.keys() - declared.keys())
        required = {k for k, v in declared.items() if "Default" not in v}
        assert required <= passed.keys(), (name, required - passed.keys())
        for value in passed.values():
            if isinstance(value, dict) and "output" in value:
                dep, key = value["output"].split(".", 1)
                assert key in templates[dep]["Outputs"], (name, value)

    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    cfn = session.client("cloudformation", endpoint_url=ENDPOINT)
    ssm = session.client("ssm", endpoint_url=ENDPOINT)
    outputs = {}

    def resolve(spec, overrides=None):
        params = []
        for key, value in {**spec.get("parameters", {}), **(overrides or {})}.items():
            if isinstance(value, dict) and "output" in value:
                dep, out = value["output"].split(".", 1)
                value = outputs[dep][out]
            elif isinstance(value, dict) and "ssm" in value:
                value = ssm.get_parameter(Name=value["ssm"])["Parameter"]["Value"]
            params.append({"ParameterKey": key, "ParameterValue": value})
        return params

    def settle(name, want):
        cfn.get_waiter("stack_create_complete" if want == "CREATE_COMPLETE" else "stack_update_complete").wait(
            StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
        assert stack["StackStatus"] == want, (name, stack["StackStatus"], stack.get("StackStatusReason"))
        outputs[name] = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        missing = templates[name]["Outputs"].keys() - outputs[name].keys()
        assert not missing, (name, "missing outputs", missing)
        return stack

    tags = [{"Key": k, "Value": v} for k, v in manifest["defaults"]["tags"].items()]
    for stage in manifest["stages"]:
        for i, wave in enumerate(waves(stage), 1):
            print(f"{stage['name']:15} wave {i}: {', '.join(wave)}")
            for name in wave:
                cfn.create_stack(StackName=name, TemplateBody=(HERE / specs[name]["template"]).read_text(),
                                 Parameters=resolve(specs[name]), Tags=tags,
                                 Capabilities=manifest["defaults"]["capabilities"])
            for name in wave:
                settle(name, "CREATE_COMPLETE")

    image_param = {p["ParameterKey"]: p["ParameterValue"] for p in
                   cfn.describe_stacks(StackName=f"BellyfedTypesenseServiceStack-{ENV}")["Stacks"][0]["Parameters"]}
    assert image_param["TypesenseImage"] == "typesense/typesense:28.0", image_param
    assert outputs[f"BellyfedTypesenseServiceStack-{ENV}"]["TypesenseImage"] == "typesense/typesense:28.0"
    print(f"all {len(specs)} stacks CREATE_COMPLETE with their outputs; Typesense image from SSM:",
          image_param["TypesenseImage"])

    # Update with changed parameters: a new Typesense image in Bootstrap, then the service reads it.
    boot, svc = f"BellyfedBootstrapStack-{ENV}", f"BellyfedTypesenseServiceStack-{ENV}"
    for name, overrides in ((boot, {"TypesenseImageUri": "typesense/typesense:28.1"}), (svc, {"DesiredCount": "0"})):
        cfn.update_stack(StackName=name, TemplateBody=(HERE / specs[name]["template"]).read_text(),
                         Parameters=resolve(specs[name], overrides), Capabilities=["CAPABILITY_NAMED_IAM"])
        settle(name, "UPDATE_COMPLETE")
    stack = cfn.describe_stacks(StackName=svc)["Stacks"][0]
    got = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert got["TypesenseImage"] == "typesense/typesense:28.1" and got["DesiredCount"] == "0", got
    ecs = session.client("ecs", endpoint_url=ENDPOINT)
    service = ecs.describe_services(cluster=f"bellyfed-{ENV}", services=[f"bellyfed-typesense-{ENV}"])["services"][0]
    assert service["desiredCount"] == 0, service
    # (moto 5.2.5 re-registers the task definition on update without its container names and
    # images, so the image is checked on the stack's parameters above, not on the revision.)
    print("update OK:", service["serviceName"], "desiredCount 0, image", got["TypesenseImage"])

if __name__ == "__main__":
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    main()
