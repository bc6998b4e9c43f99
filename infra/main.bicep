// sio on Azure: storage (uploads, artifacts, reports, deployments), the optimizer Function App (Flex Consumption),
// Event Grid subscriptions for blob-created events, the GPU inference app on Container Apps, and a Key Vault for the
// API key. Every app reaches storage, the vault and the registry with a managed identity: no keys in app settings.
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
@description('The API key both apps require (Authorization: Bearer KEY) on every route but /healthz and the console page; stored in the Key Vault.')
param apiKey string
@description('Container registry (in this resource group) that holds inferenceImage; empty for a public image.')
param registryName string = ''
@description('Inference replicas kept warm. 0 (default) scales the GPU app to zero when idle: no GPU bill at idle, but the first request after idle waits for a GPU replica to start and load the model (tens of seconds to minutes, see docs/cold-start.md). 1 keeps one GPU always billed.')
@minValue(0)
param inferenceMinReplicas int = 0
@description('Memory of each optimizer instance (Flex Consumption: 2048 or 4096 MB, its largest). Float32 import and RTN stream tensor by tensor; AWQ holds a layer\'s activations and the model\'s calibration run, so models beyond about 0.5B parameters need more than Flex offers: optimize them with `sio up` or `sio optimize` on a larger machine (README, Deploying to Azure).')
@allowed([ 2048, 4096 ])
param optimizerMemoryMB int = 4096

var storageName = toLower(replace('${prefix}${uniqueString(resourceGroup().id)}', '-', ''))
var containers = [ 'uploads', 'artifacts', 'reports', 'deployments', 'deployment-packages' ]
// Built-in role definition ids.
var blobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var queueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var tableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageQueueDataMessageSender = 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var acrPull = '7f951dda-4ed3-4680-a7ca-43fe172d538d'
// Event Grid delivers deployment events to this queue, which the inference app's queue trigger reads (no webhook key)
var deploymentQueue = 'deployment-events'

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

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentEvents 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: deploymentQueue
}

// ---- the API key, in a vault both apps read with their identities ------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${prefix}kv${uniqueString(resourceGroup().id)}', 24)
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
  }
}

resource apiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'sio-api-key'
  properties: { value: apiKey }
}

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
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: optimizerMemoryMB }
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
        { name: 'SIO_API_KEY', value: '@Microsoft.KeyVault(SecretUri=${apiKeySecret.properties.secretUri})' }
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

// The inference app's identity exists (with its roles) before the app, so the first revision can already pull the
// image, read the key from the vault and reach storage.
resource inferenceIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-inference-identity'
  location: location
}

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' existing = if (!empty(registryName)) {
  name: empty(registryName) ? 'none' : registryName
}

resource pullAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(registryName)) {
  scope: registry
  name: guid(resourceGroup().id, registryName, inferenceIdentity.id, acrPull)
  properties: {
    principalId: inferenceIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', acrPull)
  }
}

resource inference 'Microsoft.App/containerApps@2025-01-01' = {
  name: '${prefix}-inference'
  location: location
  kind: 'functionapp'
  identity: { type: 'UserAssigned', userAssignedIdentities: { '${inferenceIdentity.id}': {} } }
  dependsOn: [ inferenceAssignments, vaultAssignments, pullAssignment ]
  properties: {
    environmentId: environment.id
    workloadProfileName: 'gpu'
    configuration: {
      ingress: { external: true, targetPort: 8080, transport: 'auto' }
      secrets: [ { name: 'sio-api-key', keyVaultUrl: apiKeySecret.properties.secretUri, identity: inferenceIdentity.id } ]
      registries: empty(registryName) ? [] : [ { server: '${registryName}.azurecr.io', identity: inferenceIdentity.id } ]
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
            { name: 'SioStorage__credential', value: 'managedidentity' }
            { name: 'SioStorage__clientId', value: inferenceIdentity.properties.clientId }
            { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
            { name: 'AzureWebJobsStorage__clientId', value: inferenceIdentity.properties.clientId }
            { name: 'AZURE_CLIENT_ID', value: inferenceIdentity.properties.clientId }
            { name: 'SIO_PROVIDER', value: 'cuda' }
            { name: 'SIO_API_KEY', secretRef: 'sio-api-key' }
            { name: 'GLIBC_TUNABLES', value: 'glibc.malloc.hugetlb=1' }
            { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
          ]
          // the app loads the live deployment before it listens, so an answer on the public /healthz means ready
          probes: [ { type: 'Readiness', httpGet: { path: '/healthz', port: 8080 } } ]
        }
      ]
      scale: {
        minReplicas: inferenceMinReplicas
        maxReplicas: 4
        // HTTP traffic scales it, and so does a deployment event waiting in the queue (a replica wakes to load the model)
        rules: [
          { name: 'http', http: { metadata: { concurrentRequests: '8' } } }
          {
            name: 'deployment-events'
            azureQueue: {
              accountName: storage.name
              queueName: deploymentQueue
              queueLength: 1
              identity: inferenceIdentity.id
            }
          }
        ]
      }
    }
  }
}

// ---- Event Grid: blob-created on uploads → optimizer; on deployments → inference -------------

resource topic 'Microsoft.EventGrid/systemTopics@2024-06-01-preview' = {
  name: '${prefix}-storage-events'
  location: location
  identity: { type: 'SystemAssigned' }
  properties: { source: storage.id, topicType: 'Microsoft.Storage.StorageAccounts' }
}

// the topic delivers deployment events into the queue with its own identity
resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, topic.id, storageQueueDataMessageSender)
  properties: {
    principalId: topic.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataMessageSender)
  }
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
  dependsOn: [ topicSender ]
  properties: {
    deliveryWithResourceIdentity: {
      identity: { type: 'SystemAssigned' }
      destination: {
        endpointType: 'StorageQueue'
        properties: { resourceId: storage.id, queueName: deploymentQueue }
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

resource optimizerAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: {
  scope: storage
  name: guid(storage.id, optimizer.id, role)
  properties: {
    principalId: optimizer.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource inferenceAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in roles: {
  scope: storage
  name: guid(storage.id, inferenceIdentity.id, role)
  properties: {
    principalId: inferenceIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

// both apps read the API key from the vault
resource optimizerVaultAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, optimizer.id, keyVaultSecretsUser)
  properties: {
    principalId: optimizer.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

resource vaultAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, inferenceIdentity.id, keyVaultSecretsUser)
  properties: {
    principalId: inferenceIdentity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
  }
}

output optimizerUrl string = 'https://${optimizer.properties.defaultHostName}/api/optimizations'
output inferenceUrl string = 'https://${inference.properties.configuration.ingress.fqdn}/v1/chat/completions'
output storageAccount string = storage.name
