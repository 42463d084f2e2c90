-- Runs once, on an empty data volume: the basic-auth app keeps its users apart from runs.
CREATE DATABASE mlflow_auth OWNER mlflow;
