// Sketch (not built in CI; see README.md): one app module using the TTQ delegate.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "ttq-android-example"
include(":app")
