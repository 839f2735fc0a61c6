"""Seeds an ECS cluster on a moto server with boto3 and prints what moto answered, as one JSON line on stdout.

    python3 tests/moto/seed.py ENDPOINT CLUSTER

Four container instances (2048 CPU, 4096 MiB, a `stack` attribute each), one task definition of two containers, one
service, and six tasks: five started on named instances with StartTask, one placed by RunTask. The EC2 side goes
through Python because the project has no EC2 SDK crate: moto registers a container instance only for an EC2
instance it knows, named in the instance identity document.
"""
import json
import sys

import boto3

INSTANCES = 4
STARTED = [0, 0, 1, 2, 3]  # StartTask's instance for each started task


def main() -> None:
    endpoint, cluster = sys.argv[1], sys.argv[2]
    conf = dict(endpoint_url=endpoint, region_name="eu-west-1", aws_access_key_id="test", aws_secret_access_key="test")
    ec2, ecs = boto3.client("ec2", **conf), boto3.client("ecs", **conf)

    ecs.create_cluster(clusterName=cluster)
    image = next(i["ImageId"] for i in ec2.describe_images()["Images"] if i.get("Platform") != "windows")
    reservation = ec2.run_instances(ImageId=image, MinCount=INSTANCES, MaxCount=INSTANCES, InstanceType="m5.large")
    instances = []
    for n, ec2_instance in enumerate(reservation["Instances"]):
        registered = ecs.register_container_instance(
            cluster=cluster,
            instanceIdentityDocument=json.dumps({"instanceId": ec2_instance["InstanceId"]}),
            totalResources=[
                {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
            ],
        )["containerInstance"]
        arn = registered["containerInstanceArn"]
        # moto ignores RegisterContainerInstance's `attributes`; PutAttributes it keeps.
        ecs.put_attributes(cluster=cluster, attributes=[{"name": "stack", "value": f"s{n % 2}", "targetId": arn}])
        instances.append(arn)

    definition = ecs.register_task_definition(
        family="web",
        containerDefinitions=[
            {"name": "app", "image": "nginx", "cpu": 256, "memory": 512, "essential": True},
            {"name": "sidecar", "image": "envoy", "cpu": 128, "memory": 256, "essential": False},
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    service = ecs.create_service(cluster=cluster, serviceName="web", taskDefinition=definition, desiredCount=6)
    tasks = []
    for n, i in enumerate(STARTED):
        tasks += ecs.start_task(
            cluster=cluster, taskDefinition=definition, containerInstances=[instances[i]], startedBy=f"seed-{n}"
        )["tasks"]
    tasks += ecs.run_task(cluster=cluster, taskDefinition=definition, count=1, startedBy="seed-run")["tasks"]

    described = ecs.describe_container_instances(cluster=cluster, containerInstances=instances)["containerInstances"]
    json.dump(
        {
            "clusterArn": ecs.describe_clusters(clusters=[cluster])["clusters"][0]["clusterArn"],
            "containerInstances": described,
            "tasks": ecs.describe_tasks(cluster=cluster, tasks=[t["taskArn"] for t in tasks])["tasks"],
            "serviceArn": service["service"]["serviceArn"],
            "taskDefinitionArn": definition,
        },
        sys.stdout,
        default=str,  # timestamps
    )
    print(flush=True)


if __name__ == "__main__":
    main()
