// sio on Azure: storage (uploads, artifacts, reports, deployments), the optimizer Function App (Flex Consumption),
// Event Grid subscriptions for blob-created events, and the GPU inference app on Container Apps.
// Every app reaches storage with its managed identity; no storage keys in app settings. The API key is a secure parameter.
targetScope = 'resourceGroup'

@description('Name prefix for every resource.')
param prefix string = 'sio'
param location string = resourceGroup().location
@description('Inference container image (built from infra/Dockerfile.inference).')
param inferenceImage string
@description('GPU workload profile type of the Container Apps environment.')
param gpuProfileType string = 'Consumption-GPU-NC8as-T4'
@description('Default recipe for runs started by uploads.')
param recipe string = 'awq-int4,speculative:datastore'
@description('Dataset (uploads/NAME) for runs started by uploads.')
param dataset string = 'uploads/dataset.jsonl'
@secure()
@description('The API key both apps require (Authorization: Bearer KEY) on every route but /healthz and the console page.')
param apiKey string

var storageName = toLower(replace('${prefix}${uniqueString(resourceGroup().id)}', '-', ''))
var containers = [ 'uploads', 'artifacts', 'reports', 'deployments', 'deployment-packages' ]
// Built-in role definition ids.
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var queueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(storageName, 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for c in containers: {
  parent: blobService
  name: c
}]

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-insights'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

// ---- optimizer Function App (Flex Consumption) --------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${prefix}-optimizer-plan'
  location: location
  kind: 'functionapp'
  sku: { tier: 'FlexConsumption', name: 'FC1' }
  properties: { reserved: true }
}

resource optimizer 'Microsoft.Web/sites@2024-04-01' = {
  name: '${prefix}-optimizer-${uniqueString(resourceGroup().id)}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}deployment-packages'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 4096 }
      runtime: { name: 'dotnet-isolated', version: '10.0' }
    }
    siteConfig: {
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'SioStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
        { name: 'SioStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        { name: 'SIO_RECIPE', value: recipe }
        { name: 'SIO_DATASET', value: dataset }
        { name: 'SIO_API_KEY', value: apiKey }
        // transparent huge pages for glibc's large allocations (the prepacked weights): faster session loads and decoding
        { name: 'GLIBC_TUNABLES', value: 'glibc.malloc.hugetlb=1' }
      ]
    }
  }
}

// ---- inference app: Container Apps with a GPU workload profile --------------------------------

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${prefix}-env'
  location: location
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: { customerId: logs.properties.customerId, sharedKey: logs.listKeys().primarySharedKey }
    }
    workloadProfiles: [
      { name: 'Consumption', workloadProfileType: 'Consumption' }
      { name: 'gpu', workloadProfileType: gpuProfileType }
    ]
  }
}

resource inference 'Microsoft.App/containerApps@2024-03-01' = {
  name: '${prefix}-inference'
  location: location
  kind: 'functionapp'
  identity: { type: 'SystemAssigned' }
  properties: {
    environmentId: environment.id
    workloadProfileName: 'gpu'
    configuration: {
      ingress: { external: true, targetPort: 80, transport: 'auto' }
      secrets: [ { name: 'sio-api-key', value: apiKey } ]
    }
    template: {
      containers: [
        {
          name: 'inference'
          image: inferenceImage
          resources: { cpu: json('8'), memory: '56Gi' }
          env: [
            { name: 'AzureWebJobsStorage__accountName', value: storage.name }
            { name: 'SioStorage__blobServiceUri', value: storage.properties.primaryEndpoints.blob }
            { name: 'SioStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
            { name: 'SIO_PROVIDER', value: 'cuda' }
            { name: 'SIO_API_KEY', secretRef: 'sio-api-key' }
            { name: 'GLIBC_TUNABLES', value: 'glibc.malloc.hugetlb=1' }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
          ]
          // the app loads the live deployment before it listens, so an answer on the public /healthz means ready
          probes: [ { type: 'Readiness', httpGet: { path: '/healthz', port: 80 } } ]
        }
      ]
      scale: { minReplicas: 1, maxReplicas: 4 }
    }
  }
}

// ---- Event Grid: blob-created on uploads → optimizer; on deployments → inference -------------

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: '${prefix}-storage-events'
  location: location
  properties: { source: storage.id, topicType: 'Microsoft.Storage.StorageAccounts' }
}

resource uploadsSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'uploads-to-optimizer'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        // The blob extension's Event Grid endpoint; the key is read at deployment time, not stored in settings.
        endpointUrl: 'https://${optimizer.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.OnUpload&code=${listKeys('${optimizer.id}/host/default', '2024-04-01').systemKeys.blobs_extension}'
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/uploads/'
    }
  }
}

resource deploymentsSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2024-06-01-preview' = {
  parent: topic
  name: 'deployments-to-inference'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${inference.properties.configuration.ingress.fqdn}/runtime/webhooks/blobs?functionName=Host.Functions.OnDeployment'
      }
    }
    filter: {
      includedEventTypes: [ 'Microsoft.Storage.BlobCreated' ]
      subjectBeginsWith: '/blobServices/default/containers/deployments/blobs/current.json'
    }
  }
}

// ---- managed-identity role assignments (no keys in app settings) -------------------------------

var roles = [ blobDataOwner, queueDataContributor, tableDataContributor, storageQueueDataMessageSender ]

// 2 apps × 4 roles: index i gives app i / 4 and role i % 4.
resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for i in range(0, 8): {
  scope: storage
  name: guid(storage.id, i < 4 ? optimizer.id : inference.id, roles[i % 4])
  properties: {
    principalId: i < 4 ? optimizer.identity.principalId : inference.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles[i % 4])
  }
}]

output optimizerUrl string = 'https://${optimizer.properties.defaultHostName}/api/optimizations'
output inferenceUrl string = 'https://${inference.properties.configuration.ingress.fqdn}/v1/chat/completions'
output storageAccount string = storage.name
